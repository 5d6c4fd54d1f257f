package users

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/postgres"
	"github.com/portcullis/portcullis/internal/redis"
)

// Option configures a Service.
type Option func(*Service)

// WithCache serves Get from rc's coherent cache of user records (see redis.Coherent), shared by
// every instance and kept ttl at most: a user's record is read from PostgreSQL once and then from
// memory, until any instance changes it. A process that only writes (the CLI) sets it too, so its
// changes reach the running instances' copies.
func WithCache(rc *redis.Client, ttl time.Duration) Option {
	return func(s *Service) { s.cache = redis.NewCoherent(rc, "user:", ttl) }
}

// cached returns id's record from the cache, and whether a fill is allowed after a miss.
func (s *Service) cached(ctx context.Context, id uuid.UUID) (u User, hit, fill bool) {
	raw, ok, err := s.cache.Get(ctx, id.String())
	switch {
	case ok:
		if u, err := decodeUser(raw); err == nil && u.ID == id {
			return u, true, false
		}
		return User{}, false, false // unreadable: leave it to expire, and answer from PostgreSQL
	case errors.Is(err, redis.ErrStale):
		return User{}, false, false
	case err != nil:
		s.logger.DebugContext(ctx, "user cache read failed", "error", err)
	}
	return User{}, false, true
}

func (s *Service) fill(ctx context.Context, u User, readAt time.Time) {
	if err := s.cache.Fill(ctx, u.ID.String(), encodeUser(u), time.Hour, readAt); err != nil {
		s.logger.DebugContext(ctx, "user cache write failed", "error", err)
	}
}

// The cached form of a User: fields separated by NUL, which PostgreSQL text never holds (a
// full name is "-" when null, else "+" and the name; times are Unix microseconds, PostgreSQL's
// precision). It is read on every authenticated request, so it is made to decode fast.
const (
	userEncoding = "u1"
	userFields   = 10
	sep          = "\x00"
)

func encodeUser(u User) string {
	name := "-"
	if u.FullName != nil {
		name = "+" + *u.FullName
	}
	return strings.Join([]string{
		userEncoding, u.ID.String(), u.Email, u.Username, name, u.Role, flag(u.IsActive), flag(u.IsVerified),
		strconv.FormatInt(u.CreatedAt.UnixMicro(), 10), strconv.FormatInt(u.UpdatedAt.UnixMicro(), 10),
	}, sep)
}

var errUserEncoding = errors.New("cached user: unknown encoding")

func decodeUser(raw string) (User, error) {
	var f [userFields]string
	for i := range userFields - 1 {
		var ok bool
		if f[i], raw, ok = strings.Cut(raw, sep); !ok {
			return User{}, errUserEncoding
		}
	}
	f[userFields-1] = raw
	if f[0] != userEncoding || f[4] == "" || strings.Contains(raw, sep) {
		return User{}, errUserEncoding
	}
	id, err := uuid.Parse(f[1])
	if err != nil {
		return User{}, errUserEncoding
	}
	created, err1 := strconv.ParseInt(f[8], 10, 64)
	updated, err2 := strconv.ParseInt(f[9], 10, 64)
	if err1 != nil || err2 != nil {
		return User{}, errUserEncoding
	}
	u := User{
		ID: id, Email: f[2], Username: f[3], Role: f[5], IsActive: f[6] == "1", IsVerified: f[7] == "1",
		CreatedAt: time.UnixMicro(created).UTC(), UpdatedAt: time.UnixMicro(updated).UTC(),
	}
	if f[4][0] == '+' {
		name := f[4][1:]
		u.FullName = &name
	}
	return u, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// changed makes every instance re-read ids from PostgreSQL: call it after each write to a user,
// with the write's error. A write that surely failed changes nothing; one whose commit got no
// answer (postgres.ErrCommitUnknown) may land late, so instances re-read for the cache TTL
// rather than a marker's seconds. When Redis cannot be told, this instance ignores its cache for
// them and retries.
func (s *Service) changed(ctx context.Context, werr error, ids ...uuid.UUID) {
	if len(ids) == 0 || s.cache == nil || !postgres.MayHaveCommitted(werr) {
		return
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	mark := s.cache.Invalidate
	if werr != nil {
		mark = s.cache.Doubt
	}
	if err := mark(ctx, strs...); err != nil {
		s.logger.WarnContext(ctx, "user cache invalidation failed; will retry", "error", err, "users", len(ids))
	}
}

// RunCache retries failed cache invalidations every interval until ctx ends.
func (s *Service) RunCache(ctx context.Context, interval time.Duration) {
	if s.cache != nil {
		s.cache.Run(ctx, interval)
	}
}
