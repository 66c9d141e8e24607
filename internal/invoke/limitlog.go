package invoke

import (
	"log/slog"
	"sync"
	"time"

	"github.com/stratus-faas/stratus/internal/pool"
)

// limitedLog writes a warning at most once a minute per key, so that a
// loop or a flood of failures cannot flood the server's own log; the
// line says how many were left out since the last.
type limitedLog struct {
	log   *slog.Logger
	clock pool.Clock
	mu    sync.Mutex
	last  map[string]time.Time
	quiet map[string]int
}

const logEvery = time.Minute

func newLimitedLog(log *slog.Logger, clock pool.Clock) *limitedLog {
	return &limitedLog{log: log, clock: clock, last: map[string]time.Time{}, quiet: map[string]int{}}
}

// Warn logs msg unless key logged within the last minute.
func (l *limitedLog) Warn(key, msg string, args ...any) {
	now := l.clock.Now()
	l.mu.Lock()
	if t, ok := l.last[key]; ok && now.Sub(t) < logEvery {
		l.quiet[key]++
		l.mu.Unlock()
		return
	}
	skipped := l.quiet[key]
	l.last[key] = now
	delete(l.quiet, key)
	// Keys of the past stay bounded: forget those quiet for a while.
	if len(l.last) > 10000 {
		for k, t := range l.last {
			if now.Sub(t) >= logEvery {
				delete(l.last, k)
				delete(l.quiet, k)
			}
		}
	}
	l.mu.Unlock()
	if skipped > 0 {
		args = append(args, "suppressed_since_last", skipped)
	}
	l.log.Warn(msg, args...)
}
