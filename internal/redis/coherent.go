package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/portcullis/portcullis/internal/every"
)

// ErrStale is returned by Coherent.Get for a key whose source changed lately: read the source
// of truth, and do not fill.
var ErrStale = errors.New("cached value is stale")

// staleMarker is the value of a key invalidated by a write.
const staleMarker = "stale"

// maxMarkerTTL bounds how long a write keeps readers away from the cache.
const maxMarkerTTL = 5 * time.Second

// Coherent caches values read from PostgreSQL in Redis, and every instance reads them through
// its own memory (GetCached): repeated reads cost no round trip, and a write by any instance
// reaches every instance's copy through Redis's invalidation messages.
//
// Only a reader that missed fills a key, and never over anything already there. A writer,
// after its commit, replaces the key with a stale marker (Invalidate) or a final value such as
// a tombstone (Put), which fills cannot overwrite while it lives; so a reader that read the old
// row just before the write cannot bring it back. A reader whose read of the source took longer
// than half a marker's life does not fill at all: a marker written after that read may already
// be gone. A write whose commit got no answer may land later than a marker lives, so its marker
// (Doubt) lives as long as a value. When Redis cannot take an invalidation, the key is pending:
// this instance ignores the cache for it and retries (Run) until Redis takes it.
//
// A nil *Coherent caches nothing.
type Coherent struct {
	rc        *Client
	namespace string
	ttl       time.Duration // of values, tombstones and this instance's copies
	markerTTL time.Duration

	mu      sync.Mutex
	pending map[string]time.Duration // id: the life of the stale marker Redis has yet to take
}

// NewCoherent returns a cache of keys namespace+id in rc whose values live at most ttl.
func NewCoherent(rc *Client, namespace string, ttl time.Duration) *Coherent {
	return &Coherent{rc: rc, namespace: namespace, ttl: ttl, markerTTL: min(ttl, maxMarkerTTL), pending: map[string]time.Duration{}}
}

// Key returns the Redis key of id.
func (c *Coherent) Key(id string) string { return c.rc.Key(c.namespace + id) }

// Get returns id's cached value and whether there is one. It returns ErrStale for an
// invalidated or pending id, and Redis's error when Redis cannot answer.
func (c *Coherent) Get(ctx context.Context, id string) (string, bool, error) {
	if c == nil {
		return "", false, nil
	}
	if c.IsPending(id) {
		return "", false, ErrStale
	}
	v, ok, err := c.rc.GetCached(ctx, c.Key(id), c.ttl)
	if ok && v == staleMarker {
		return "", false, ErrStale
	}
	return v, ok, err
}

// Fill caches value, read from the source of truth starting at readAt, for at most ttl (at
// least a second), unless id is cached, invalidated or pending, or the read is too old to
// trust: older than half a stale marker's life when the fill is sent, or when it reaches Redis
// (by Redis's clock). A fill held up on its way (a link that stalls, then heals) would
// otherwise land after the marker of a change that came meanwhile had expired, and put back
// what was read before it for the TTL, on every instance.
func (c *Coherent) Fill(ctx context.Context, id, value string, ttl time.Duration, readAt time.Time) error {
	if c == nil || c.IsPending(id) {
		return nil
	}
	trusted := readAt.Add(c.markerTTL / 2)
	if time.Now().After(trusted) {
		return nil
	}
	return c.rc.SetNXBefore(ctx, c.Key(id), value, max(min(ttl, c.ttl), time.Second), trusted)
}

// Put overwrites the values of ids with value(id) for the cache TTL, whatever was cached. When
// Redis cannot take it the ids become pending, and the error is returned for the log.
func (c *Coherent) Put(ctx context.Context, ids []string, value func(id string) string) error {
	return c.set(ctx, ids, value, c.ttl)
}

// Invalidate makes every instance read ids from the source of truth until fills resume.
func (c *Coherent) Invalidate(ctx context.Context, ids ...string) error {
	return c.set(ctx, ids, func(string) string { return staleMarker }, c.markerTTL)
}

// Doubt makes every instance read ids from the source of truth for as long as a value lives (the
// TTL), after a write whose commit got no answer: it may still land, seconds later, and a fill
// that read the old row meanwhile must not outlive the marker by much.
func (c *Coherent) Doubt(ctx context.Context, ids ...string) error {
	return c.set(ctx, ids, func(string) string { return staleMarker }, c.ttl)
}

func (c *Coherent) set(ctx context.Context, ids []string, value func(string) string, ttl time.Duration) error {
	if c == nil || len(ids) == 0 {
		return nil
	}
	// The caller's request may be over; the invalidation must still land.
	if err := c.write(context.WithoutCancel(ctx), ids, value, ttl); err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, id := range ids {
			c.pending[id] = max(c.pending[id], ttl)
		}
		return err
	}
	return nil
}

// write sets the keys of ids to value(id) for ttl, in one round trip.
func (c *Coherent) write(ctx context.Context, ids []string, value func(string) string, ttl time.Duration) error {
	keys, values := make([]string, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		keys[i], values[i] = c.Key(id), value(id)
	}
	return c.rc.SetEach(ctx, keys, values, ttl)
}

// IsPending reports whether an invalidation of id has yet to reach Redis.
func (c *Coherent) IsPending(id string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	return ok
}

// Run retries pending invalidations every interval until ctx ends.
func (c *Coherent) Run(ctx context.Context, interval time.Duration) {
	every.Tick(ctx, interval, func() bool { c.RetryPending(ctx); return true })
}

// RetryPending invalidates the pending ids once more, and forgets them when Redis takes it.
// A stale marker is right for every pending id: a tombstoned one reads as such from the source.
// It lives as long as the value or marker that Redis could not take would have.
func (c *Coherent) RetryPending(ctx context.Context) {
	c.mu.Lock()
	byTTL := map[time.Duration][]string{}
	for id, ttl := range c.pending {
		byTTL[ttl] = append(byTTL[ttl], id)
	}
	c.mu.Unlock()
	for ttl, ids := range byTTL {
		if c.write(ctx, ids, func(string) string { return staleMarker }, ttl) != nil {
			return
		}
		c.mu.Lock()
		for _, id := range ids {
			if c.pending[id] <= ttl { // not since failed again with a longer marker
				delete(c.pending, id)
			}
		}
		c.mu.Unlock()
	}
}
