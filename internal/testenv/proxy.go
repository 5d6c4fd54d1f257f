package testenv

import (
	"bytes"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy in front of a real server that a test can cut, to see what the service
// does when that server becomes unreachable mid-flight, and restore; or make lose or withhold
// the reply to one message.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	marker []byte  // LoseReplyTo's, WithholdReplyTo's or DeliverLate's, until a client message holds it
	mode   verdict // what becomes of the reply to the marked message: drop, hangUp or late
	sent   chan struct{}
	after  time.Duration // DeliverLate's delay
	open   chan struct{} // closed while forwarding; open while stalled (Stall)
}

// NewProxy listens on a loopback port and forwards to target until t ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, open: make(chan struct{})}
	close(p.open)
	go p.serve()
	t.Cleanup(func() { p.Resume(); ln.Close(); p.Cut() })
	return p
}

// BehindProxy returns rawURL (a PostgreSQL or Redis URL) with its host replaced by a Proxy in
// front of that host, and the Proxy.
func BehindProxy(t testing.TB, rawURL string) (string, *Proxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := NewProxy(t, u.Host)
	u.Host = p.Addr()
	return u.String(), p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every open connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// LoseReplyTo makes the proxy forward the next client message that contains marker (ASCII,
// matched without regard to case) and lose the server's reply to it: the reply is read, dropped,
// and the connection closed, as when a network fails after a request arrived. With "commit" in
// front of PostgreSQL, the client cannot know whether its transaction committed; it did.
func (p *Proxy) LoseReplyTo(marker string) { p.arm(marker, hangUp) }

// WithholdReplyTo makes the proxy forward the next client message that contains marker (as
// LoseReplyTo) and never deliver the server's reply to it, nor anything after on that
// connection, which it keeps open, as a stalled network would, until the client gives up. The
// channel it returns is closed once that message has been forwarded.
func (p *Proxy) WithholdReplyTo(marker string) <-chan struct{} { return p.arm(marker, drop) }

// DeliverLate makes the proxy hang up on the client as soon as it sends the next message that
// contains marker (as LoseReplyTo matches it), and forward that message to the server only
// after the delay: with "commit" in front of PostgreSQL, a transaction whose client gave it up
// for lost commits that much later. The channel it returns is closed once the server has
// answered the message (the commit has landed), or has closed the connection instead.
func (p *Proxy) DeliverLate(marker string, after time.Duration) <-chan struct{} {
	p.mu.Lock()
	p.after = after
	p.mu.Unlock()
	return p.arm(marker, late)
}

func (p *Proxy) arm(marker string, mode verdict) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker, p.mode, p.sent = bytes.ToLower([]byte(marker)), mode, make(chan struct{})
	return p.sent
}

// takeMarker returns what becomes of the replies once chunk is forwarded: forward, or the armed
// mode when chunk holds the armed marker, disarming it; and, for late, the delay. done is to be
// called once chunk is sent (for late: once the server has answered it).
func (p *Proxy) takeMarker(chunk []byte) (mode verdict, after time.Duration, done func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker == nil || !bytes.Contains(bytes.ToLower(chunk), p.marker) {
		return forward, 0, func() {}
	}
	p.marker = nil
	sent := p.sent
	return p.mode, p.after, sync.OnceFunc(func() { close(sent) })
}

// HoldFrom makes the proxy stall (Stall) as the next client message that contains marker (as
// LoseReplyTo matches it) arrives, before forwarding it: that message and everything after it
// wait, on connections kept open, until Resume delivers them, as when a link stops carrying
// packets for a while and then heals, its kernel sending what it had queued.
func (p *Proxy) HoldFrom(marker string) { p.arm(marker, hold) }

// Stall stops all forwarding until Resume, in either direction, holding every connection open
// and accepting new ones that go nowhere: a network that drops packets (a partition, a dead
// switch port) or a server that hangs, where Cut is one that refuses.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default:
	}
}

// Resume forwards again after Stall, what was held back included.
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// flowing waits while the proxy is stalled.
func (p *Proxy) flowing() {
	p.mu.Lock()
	open := p.open
	p.mu.Unlock()
	<-open
}

// Restore accepts connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.connect(c)
	}
}

// connect forwards c to the target, once the proxy is not stalled.
func (p *Proxy) connect(c net.Conn) {
	p.flowing()
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var (
		replies atomic.Int32 // set before the marked message is sent, so its reply is the next read
		landed  = func() {}  // for late: closes DeliverLate's channel; set before replies
	)
	go pipe(up, c, func(chunk []byte) (verdict, func()) {
		p.flowing()
		mode, after, done := p.takeMarker(chunk)
		if mode == hold {
			p.Stall()
			p.flowing()
			return forward, done
		}
		if mode != late {
			if mode != forward {
				replies.Store(int32(mode))
			}
			return forward, done
		}
		answered := make(chan struct{})
		landed = sync.OnceFunc(func() { done(); close(answered) })
		replies.Store(int32(late))
		c.Close()
		time.Sleep(after)
		if _, err := up.Write(chunk); err != nil {
			landed()
		}
		<-answered // the reply pipe saw the answer, or the server hang up
		return hangUp, func() {}
	})
	go func() {
		defer func() {
			if verdict(replies.Load()) == late {
				landed()
			}
		}()
		pipe(c, up, func([]byte) (verdict, func()) {
			p.flowing()
			v := verdict(replies.Load())
			if v == late {
				landed()
				return hangUp, func() {}
			}
			return v, func() {}
		})
	}()
}

// verdict is what pipe does with a chunk read.
type verdict int32

const (
	forward verdict = iota // write it on
	drop                   // discard it, and go on reading
	hangUp                 // discard it and close both connections
	late                   // DeliverLate's: the reply tells the marked message landed; then hangUp
	hold                   // HoldFrom's: stall, then forward
)

// pipe copies src to dst as judge says of each chunk read (calling its done once the chunk is
// written), until either side fails or judge says hangUp, then closes both.
func pipe(dst, src net.Conn, judge func(chunk []byte) (verdict, func())) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			switch v, done := judge(buf[:n]); v {
			case hangUp:
				return
			case forward:
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
				done()
			}
		}
		if err != nil {
			return
		}
	}
}
