package ratelimit

import (
	"slices"
	"sync"
)

// maxLocalEntries bounds the in-process limiter's memory.
const maxLocalEntries = 100_000

// local is the in-process fallback: the same GCRA over a bounded map of TATs in microseconds.
type local struct {
	mu   sync.Mutex
	tats map[string]int64
	max  int
}

func newLocal(max int) *local { return &local{tats: make(map[string]int64), max: max} }

// check decides for key at now (microseconds), recording the event when record is set.
func (m *local) check(key string, now int64, p params, record bool) decision {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, store := gcra(m.tats[key], now, p, record)
	if store != 0 {
		if _, ok := m.tats[key]; !ok && len(m.tats) >= m.max {
			m.evict(now)
		}
		m.tats[key] = store
	}
	return d
}

// refund moves key's TAT back by one emission interval, forgetting a bucket that is full again.
func (m *local) refund(key string, now int64, p params) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if tat, ok := m.tats[key]; ok {
		if tat -= p.t; tat <= now {
			delete(m.tats, key)
		} else {
			m.tats[key] = tat
		}
	}
}

// reset forgets key.
func (m *local) reset(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tats, key)
}

// len reports how many buckets are held.
func (m *local) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tats)
}

// evict makes room. Buckets whose TAT has passed are full, the same as absent, so dropping them
// changes nothing. If that frees too little (under a quarter of the map), it also drops the
// buckets with the earliest TATs until half the map is left: those are the closest to full, so
// forgetting them loosens the limit least, and the next sweep is at least max/2 new keys away,
// so sweeps cost O(log n) per insertion over time rather than O(n) each.
func (m *local) evict(now int64) {
	for k, tat := range m.tats {
		if tat < now {
			delete(m.tats, k)
		}
	}
	if len(m.tats) <= m.max*3/4 {
		return
	}
	tats := make([]int64, 0, len(m.tats))
	for _, tat := range m.tats {
		tats = append(tats, tat)
	}
	slices.Sort(tats)
	drop := len(m.tats) - m.max/2
	cut := tats[drop-1] // drop TATs up to and including cut, at most drop of them
	for k, tat := range m.tats {
		if drop == 0 {
			break
		}
		if tat <= cut {
			delete(m.tats, k)
			drop--
		}
	}
}
