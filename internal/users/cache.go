package users

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/portcullis/portcullis/internal/redis"
)

// Option configures a Service.
type Option func(*Service)

// WithCache serves Get from c (see redis.Coherent): a user's record is read from PostgreSQL once
// and then from memory, until any instance changes it.
func WithCache(c *redis.Coherent) Option { return func(s *Service) { s.cache = c } }

// cachedUser is a User as the cache holds it; V names the encoding.
type cachedUser struct {
	V int `json:"v"`
	User
}

const cachedUserVersion = 1

// cached returns id's record from the cache, and whether a fill is allowed after a miss.
func (s *Service) cached(ctx context.Context, id uuid.UUID) (u User, hit, fill bool) {
	raw, ok, err := s.cache.Get(ctx, id.String())
	switch {
	case ok:
		var c cachedUser
		if err := json.Unmarshal([]byte(raw), &c); err == nil && c.V == cachedUserVersion && c.ID == id {
			return c.User, true, false
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
	raw, err := json.Marshal(cachedUser{V: cachedUserVersion, User: u})
	if err == nil {
		err = s.cache.Fill(ctx, u.ID.String(), string(raw), time.Hour, readAt)
	}
	if err != nil {
		s.logger.DebugContext(ctx, "user cache write failed", "error", err)
	}
}

// changed makes every instance re-read ids from PostgreSQL: call it after each committed write
// to a user. When Redis cannot be told, this instance ignores its cache for them and retries.
func (s *Service) changed(ctx context.Context, ids ...uuid.UUID) {
	if len(ids) == 0 || s.cache == nil {
		return
	}
	strs := make([]string, len(ids))
	for i, id := range ids {
		strs[i] = id.String()
	}
	if err := s.cache.Invalidate(ctx, strs...); err != nil {
		s.logger.WarnContext(ctx, "user cache invalidation failed; will retry", "error", err, "users", len(ids))
	}
}

// RunCache retries failed cache invalidations every interval until ctx ends.
func (s *Service) RunCache(ctx context.Context, interval time.Duration) {
	if s.cache != nil {
		s.cache.Run(ctx, interval)
	}
}
