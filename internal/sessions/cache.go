package sessions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/rueidis"

	"github.com/portcullis/portcullis/internal/redis"
)

// cache keeps session states in Redis. Every method may fail; the service then asks PostgreSQL.
type cache struct {
	rc  *redis.Client
	ttl time.Duration
}

func (c cache) key(id uuid.UUID) string { return c.rc.Key("session:" + id.String()) }

// staleMarker holds a session's key after its state changed: readers go to PostgreSQL and, as
// the key exists, cannot fill it with what they read until the marker expires.
const staleMarker = "stale"

// errStale is returned by get for a key holding staleMarker.
var errStale = errors.New("cached session state is stale")

func (c cache) get(ctx context.Context, id uuid.UUID) (State, bool, error) {
	var raw string
	err := c.rc.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		var err error
		raw, err = rc.Do(ctx, rc.B().Get().Key(c.key(id)).Build()).ToString()
		return err
	})
	if rueidis.IsRedisNil(err) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, err
	}
	if raw == staleMarker {
		return State{}, false, errStale
	}
	st, err := decodeState(id, raw)
	return st, err == nil, err
}

// fill caches a state read from PostgreSQL, unless the key already holds one: a fill that
// read PostgreSQL before a revocation must never overwrite the revocation's tombstone.
func (c cache) fill(ctx context.Context, st State, now time.Time) error {
	ttl := c.ttl
	if until := st.ExpiresAt.Sub(now); until < ttl {
		ttl = until
	}
	if ttl < time.Second {
		ttl = time.Second // a dead session is cached too: it stays dead
	}
	return c.rc.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		err := rc.Do(ctx, rc.B().Set().Key(c.key(st.SessionID)).Value(encodeState(st)).Nx().Ex(ttl).Build()).Error()
		if rueidis.IsRedisNil(err) {
			return nil // already cached
		}
		return err
	})
}

// tombstone marks sessions revoked in the cache, overwriting whatever state it held.
func (c cache) tombstone(ctx context.Context, now time.Time, ids ...uuid.UUID) error {
	return c.setAll(ctx, ids, func(id uuid.UUID) string {
		return encodeState(State{SessionID: id, Revoked: true, ExpiresAt: now})
	})
}

// markStale replaces the cached states of ids with staleMarker for the cache TTL.
func (c cache) markStale(ctx context.Context, ids ...uuid.UUID) error {
	return c.setAll(ctx, ids, func(uuid.UUID) string { return staleMarker })
}

func (c cache) setAll(ctx context.Context, ids []uuid.UUID, value func(uuid.UUID) string) error {
	if len(ids) == 0 {
		return nil
	}
	return c.rc.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		cmds := make(rueidis.Commands, len(ids))
		for i, id := range ids {
			cmds[i] = rc.B().Set().Key(c.key(id)).Value(value(id)).Ex(c.ttl).Build()
		}
		for _, r := range rc.DoMulti(ctx, cmds...) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		return nil
	})
}

// encodeState writes "v1|user_id|role|user_active|revoked|expires_unix_ms".
func encodeState(st State) string {
	return strings.Join([]string{"v1", st.UserID.String(), st.Role, flag(st.UserActive), flag(st.Revoked), strconv.FormatInt(st.ExpiresAt.UnixMilli(), 10)}, "|")
}

func decodeState(id uuid.UUID, raw string) (State, error) {
	f := strings.Split(raw, "|")
	if len(f) != 6 || f[0] != "v1" {
		return State{}, fmt.Errorf("cached session %s: unknown encoding", id)
	}
	uid, err := uuid.Parse(f[1])
	if err != nil {
		return State{}, fmt.Errorf("cached session %s: %w", id, err)
	}
	ms, err := strconv.ParseInt(f[5], 10, 64)
	if err != nil {
		return State{}, fmt.Errorf("cached session %s: %w", id, err)
	}
	return State{SessionID: id, UserID: uid, Role: f[2], UserActive: f[3] == "1", Revoked: f[4] == "1", ExpiresAt: time.UnixMilli(ms)}, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
