package sessions

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/redis"
)

// cache keeps session states in Redis, read through each instance's memory (see
// redis.Coherent). Every method may fail; the service then asks PostgreSQL.
type cache struct{ c *redis.Coherent }

func (c cache) get(ctx context.Context, id uuid.UUID) (State, bool, error) {
	raw, ok, err := c.c.Get(ctx, id.String())
	if !ok || err != nil {
		return State{}, false, err
	}
	st, err := decodeState(id, raw)
	return st, err == nil, err
}

// fill caches a state read from PostgreSQL starting at readAt, unless the key already holds
// one: a fill that read PostgreSQL before a revocation must never overwrite its tombstone.
// A dead session is cached too, for at least a second: it stays dead.
func (c cache) fill(ctx context.Context, st State, now, readAt time.Time) error {
	return c.c.Fill(ctx, st.SessionID.String(), encodeState(st), st.ExpiresAt.Sub(now), readAt)
}

// tombstone marks sessions revoked in the cache, overwriting whatever state it held.
func (c cache) tombstone(ctx context.Context, now time.Time, ids ...uuid.UUID) error {
	return c.c.Put(ctx, strs(ids), func(id string) string {
		return encodeState(State{SessionID: uuid.MustParse(id), Revoked: true, ExpiresAt: now})
	})
}

// markStale makes every instance re-read the states of ids from PostgreSQL.
func (c cache) markStale(ctx context.Context, ids ...uuid.UUID) error {
	return c.c.Invalidate(ctx, strs(ids)...)
}

// doubt makes every instance re-read the states of ids from PostgreSQL for the cache TTL, after a
// change whose commit got no answer and may still land.
func (c cache) doubt(ctx context.Context, ids ...uuid.UUID) error {
	return c.c.Doubt(ctx, strs(ids)...)
}

func strs(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
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
