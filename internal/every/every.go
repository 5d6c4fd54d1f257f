// Package every runs background work on a ticker.
package every

import (
	"context"
	"time"
)

// Tick calls fn every interval until ctx ends or fn returns false.
func Tick(ctx context.Context, interval time.Duration, fn func() bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !fn() {
				return
			}
		}
	}
}
