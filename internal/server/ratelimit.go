package server

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// callerLimits bounds each caller's request rate on the API listener: a
// key (an instance's role session counts by its principal, so all
// instances of a function share one) over its rate is told to slow down
// with its protocol's throttling error, and cannot crowd out the others.
type callerLimits struct {
	perSecond float64
	burst     int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newCallerLimits(perSecond float64) *callerLimits {
	return &callerLimits{perSecond: perSecond, burst: max(1, int(math.Ceil(2*perSecond))), m: map[string]*rate.Limiter{}}
}

// allow takes one request of caller; when refused, it says how long to wait.
func (c *callerLimits) allow(caller string, now time.Time) (bool, time.Duration) {
	c.mu.Lock()
	l, ok := c.m[caller]
	if !ok {
		if len(c.m) >= 10000 {
			// Forget callers whose bucket has refilled: they are idle.
			for k, v := range c.m {
				if v.TokensAt(now) >= float64(c.burst) {
					delete(c.m, k)
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(c.perSecond), c.burst)
		c.m[caller] = l
	}
	c.mu.Unlock()
	r := l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// writeThrottled answers in the shape of the request's protocol.
func writeThrottled(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
	writeRefusal(w, r, refusal{status: http.StatusTooManyRequests, rest: "TooManyRequestsException", query: "Throttling",
		awsJSON: "com.amazonaws.sqs#RequestThrottled", s3: "SlowDown", msg: "Rate exceeded for this caller: slow down and retry", reason: "CallerRateLimitExceeded"})
}
