package sessions

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// The active-sessions gauge counts live sessions in PostgreSQL: a scan of user_sessions that
// grows with every session kept (~1 s of a core at millions). Each instance sampling on its own
// scanned it once per period each; SharedLiveCount has the instances share one count a period.
const (
	liveCountKey = "sessions:live"          // the last count, expiring when it is a period old
	liveClaimKey = "sessions:live:counting" // held for a period by the instance making the next
)

// SharedLiveCount returns how many sessions are live, counted at most once per period by the
// instances sharing this Redis: a count made in the last period is read from Redis; otherwise
// the one instance that claims the next count makes and shares it, and the others get ok false
// (keep what they showed). Should the counting instance fail, the claim lapses after a period.
// While Redis is unavailable each instance counts on its own.
func (s *Service) SharedLiveCount(ctx context.Context, period time.Duration) (n int64, ok bool, err error) {
	var shared int64
	fresh, claimed := false, false
	rerr := s.rc.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		v, err := rc.Do(ctx, rc.B().Get().Key(s.rc.Key(liveCountKey)).Build()).AsInt64()
		switch {
		case err == nil:
			shared, fresh = v, true
			return nil
		case !rueidis.IsRedisNil(err):
			return err
		}
		err = rc.Do(ctx, rc.B().Set().Key(s.rc.Key(liveClaimKey)).Value("1").Nx().Px(period).Build()).Error()
		if rueidis.IsRedisNil(err) {
			return nil // another instance is counting
		}
		claimed = err == nil
		return err
	})
	switch {
	case rerr != nil:
		n, err = s.CountLive(ctx)
		return n, err == nil, err
	case fresh:
		return shared, true, nil
	case !claimed:
		return 0, false, nil
	}
	if n, err = s.CountLive(ctx); err != nil {
		return 0, false, err
	}
	if err := s.rc.Do(ctx, func(ctx context.Context, rc rueidis.Client) error {
		return rc.Do(ctx, rc.B().Set().Key(s.rc.Key(liveCountKey)).Value(strconv.FormatInt(n, 10)).Px(period).Build()).Error()
	}); err != nil {
		s.logger.WarnContext(ctx, "could not share the count of live sessions; other instances count again", "error", err)
	}
	return n, true, nil
}
