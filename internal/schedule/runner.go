package schedule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/store"
)

// Schedule is one EventBridge Scheduler schedule with a function target.
type Schedule struct {
	Name                  string      `json:"name"`
	Group                 string      `json:"group"`
	Expression            string      `json:"expression"`
	Timezone              string      `json:"timezone,omitempty"`
	Description           string      `json:"description,omitempty"`
	State                 string      `json:"state"` // ENABLED or DISABLED
	TargetARN             string      `json:"targetArn"`
	RoleARN               string      `json:"roleArn,omitempty"`
	Input                 string      `json:"input,omitempty"`
	StartDate             *time.Time  `json:"startDate,omitempty"`
	EndDate               *time.Time  `json:"endDate,omitempty"`
	ActionAfterCompletion string      `json:"actionAfterCompletion,omitempty"`
	Retry                 RetryPolicy `json:"retry,omitzero"`
	DeadLetterARN         string      `json:"deadLetterArn,omitempty"`
	ARN                   string      `json:"arn,omitempty"` // its own, for dead letters
	Created               time.Time   `json:"created"`
	Modified              time.Time   `json:"modified"`
}

// RetryPolicy bounds how long and how often a tick that could not be
// delivered is tried again, as Scheduler's Target.RetryPolicy does.
type RetryPolicy struct {
	MaxAgeSeconds int `json:"maxAge"`
	MaxAttempts   int `json:"maxAttempts"`
}

// DefaultRetry is Scheduler's default: a day, 185 retries.
var DefaultRetry = RetryPolicy{MaxAgeSeconds: 86400, MaxAttempts: 185}

// ErrTargetGone is a delivery that no retry can mend (the function is
// gone): sent to the dead-letter queue at once.
var ErrTargetGone = errors.New("target does not exist")

// DeadLetter sends an undeliverable tick's input to a queue, with
// Scheduler's message attributes.
type DeadLetter func(ctx context.Context, queueARN string, body []byte, attrs map[string]string) error

// Errors the wire layer maps.
var (
	ErrNotFound = errors.New("schedule not found")
	ErrExists   = errors.New("schedule already exists")
)

var nameRE = regexp.MustCompile(`^[0-9a-zA-Z-_.]{1,64}$`)

// Validate checks a schedule and returns its parsed expression.
func (s *Schedule) Validate() (Expr, error) {
	if !nameRE.MatchString(s.Name) {
		return nil, invalidf("Name must be 1 to 64 letters, digits, -, _ or .")
	}
	switch s.State {
	case "":
		s.State = "ENABLED"
	case "ENABLED", "DISABLED":
	default:
		return nil, invalidf("State must be ENABLED or DISABLED")
	}
	switch s.ActionAfterCompletion {
	case "":
		s.ActionAfterCompletion = "NONE"
	case "NONE", "DELETE":
	default:
		return nil, invalidf("ActionAfterCompletion must be NONE or DELETE")
	}
	if s.Input != "" && !json.Valid([]byte(s.Input)) {
		return nil, invalidf("Target.Input must be JSON for a Lambda function target")
	}
	if s.Retry == (RetryPolicy{}) {
		s.Retry = DefaultRetry
	}
	if s.Retry.MaxAgeSeconds < 60 || s.Retry.MaxAgeSeconds > 86400 {
		return nil, invalidf("RetryPolicy.MaximumEventAgeInSeconds must be between 60 and 86400")
	}
	if s.Retry.MaxAttempts < 0 || s.Retry.MaxAttempts > 185 {
		return nil, invalidf("RetryPolicy.MaximumRetryAttempts must be between 0 and 185")
	}
	return Parse(s.Expression, s.Timezone, s.Created)
}

func key(group, name string) string { return group + "/" + name }

// Fire queues one tick's invocation; id is the same on every node, so the
// queue keeps one. It reports whether this call was the first.
type Fire func(ctx context.Context, target string, payload []byte, id string) (first bool, err error)

// Runner keeps the schedules and fires their ticks.
type Runner struct {
	kv   jetstream.KeyValue
	log  *slog.Logger
	fire Fire
	dlq  DeadLetter
	now  func() time.Time
	// backoff is the first wait before a retry; each doubles it, to a minute.
	backoff time.Duration
	stopped chan struct{} // closed by Close: retries give up

	stopWatch func()

	mu     sync.Mutex
	scheds map[string]*entry
	timer  *time.Timer
	closed bool
	wg     sync.WaitGroup
}

type entry struct {
	s    *Schedule // nil once deleted
	rev  uint64
	expr Expr
	next time.Time
}

// Open loads the schedules and starts firing them.
func Open(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger, fire Fire, dlq DeadLetter) (*Runner, error) {
	r := &Runner{kv: kv, log: log, fire: fire, dlq: dlq, now: time.Now, backoff: time.Second, stopped: make(chan struct{}), scheds: map[string]*entry{}}
	var err error
	var loaded atomic.Bool // re-arm on each change, but once for the initial load
	r.stopWatch, err = store.FollowJSON(ctx, kv, log, func(name string, s *Schedule, rev uint64) {
		r.set(name, s, rev)
		if loaded.Load() {
			r.arm()
		}
	})
	if err != nil {
		return nil, err
	}
	loaded.Store(true)
	r.arm()
	return r, nil
}

// set installs a schedule. Ticks missed while no node ran are skipped:
// the next tick is the first after now.
func (r *Runner) set(k string, s *Schedule, rev uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.scheds[k]; ok && cur.rev >= rev {
		return
	}
	ent := &entry{s: s, rev: rev}
	if s != nil {
		expr, err := Parse(s.Expression, s.Timezone, s.Created)
		if err == nil {
			ent.expr = expr
			ent.next = r.nextTick(s, expr, r.now())
		}
	}
	r.scheds[k] = ent
}

func (r *Runner) nextTick(s *Schedule, expr Expr, after time.Time) time.Time {
	if s.State != "ENABLED" {
		return time.Time{}
	}
	if s.StartDate != nil && after.Before(*s.StartDate) {
		after = s.StartDate.Add(-time.Nanosecond)
	}
	next := expr.Next(after)
	if s.EndDate != nil && next.After(*s.EndDate) {
		return time.Time{}
	}
	return next
}

// arm sets the one timer for the earliest tick: no polling.
func (r *Runner) arm() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	var earliest time.Time
	for _, e := range r.scheds {
		if e.s != nil && !e.next.IsZero() && (earliest.IsZero() || e.next.Before(earliest)) {
			earliest = e.next
		}
	}
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if !earliest.IsZero() {
		r.timer = time.AfterFunc(max(0, earliest.Sub(r.now())), r.fireDue)
	}
}

func (r *Runner) fireDue() {
	now := r.now()
	type due struct {
		key  string
		s    *Schedule
		tick time.Time
	}
	var ticks []due
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	for k, e := range r.scheds {
		if e.s == nil || e.next.IsZero() || e.next.After(now) {
			continue
		}
		ticks = append(ticks, due{k, e.s, e.next})
		e.next = r.nextTick(e.s, e.expr, now)
	}
	r.mu.Unlock()
	for _, d := range ticks {
		r.wg.Go(func() { r.fireOne(d.key, d.s, d.tick) })
	}
	r.arm()
}

func (r *Runner) fireOne(k string, s *Schedule, tick time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	payload := []byte(s.Input)
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	id := "schedule:" + k + ":" + strconv.FormatInt(tick.Unix(), 10)
	first, err := r.deliver(s, payload, id, tick)
	if err != nil {
		return
	}
	// One-shot schedules that asked for it go once fired (by the node that fired).
	if first && s.ActionAfterCompletion == "DELETE" && isOneShot(s.Expression) {
		if err := r.Delete(ctx, s.Group, s.Name); err != nil && !errors.Is(err, ErrNotFound) {
			r.log.Warn("delete completed schedule", "schedule", k, "err", err)
		}
	}
}

// deliver queues a tick's invocation, retrying a failed delivery with
// growing waits within the schedule's RetryPolicy; a tick that cannot be
// delivered goes to its dead-letter queue with Scheduler's attributes.
func (r *Runner) deliver(s *Schedule, payload []byte, id string, tick time.Time) (bool, error) {
	retry := s.Retry
	if retry == (RetryPolicy{}) {
		retry = DefaultRetry
	}
	deadline := tick.Add(time.Duration(retry.MaxAgeSeconds) * time.Second)
	wait := r.backoff
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		first, err := r.fire(ctx, s.TargetARN, payload, id)
		cancel()
		if err == nil {
			return first, nil
		}
		exhausted := ""
		switch {
		case errors.Is(err, ErrTargetGone):
		case attempt >= retry.MaxAttempts:
			exhausted = "MaximumRetryAttempts"
		case r.now().Add(wait).After(deadline):
			exhausted = "MaximumEventAgeInSeconds"
		}
		if errors.Is(err, ErrTargetGone) || exhausted != "" {
			r.log.Warn("schedule tick not delivered", "schedule", key(s.Group, s.Name), "tick", tick, "retries", attempt, "err", err)
			r.deadLetter(s, payload, id, attempt, exhausted, err)
			return false, err
		}
		select {
		case <-time.After(wait):
		case <-r.stopped:
			return false, err
		}
		wait = min(2*wait, time.Minute)
	}
}

func (r *Runner) deadLetter(s *Schedule, payload []byte, id string, retries int, exhausted string, cause error) {
	if s.DeadLetterARN == "" || r.dlq == nil {
		return
	}
	code := "TargetDeliveryFailed"
	if errors.Is(cause, ErrTargetGone) {
		code = "ResourceNotFoundException"
	}
	msg := cause.Error()
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	attrs := map[string]string{
		"ERROR_CODE":     code,
		"ERROR_MESSAGE":  msg,
		"EXECUTION_ID":   id,
		"RETRY_ATTEMPTS": strconv.Itoa(retries),
		"SCHEDULE_ARN":   s.ARN,
		"TARGET_ARN":     s.TargetARN,
	}
	if exhausted != "" {
		attrs["EXHAUSTED_RETRY_CONDITION"] = exhausted
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.dlq(ctx, s.DeadLetterARN, payload, attrs); err != nil {
		r.log.Error("schedule tick lost: its dead-letter queue refused it", "schedule", key(s.Group, s.Name), "queue", s.DeadLetterARN, "err", err)
	}
}

func isOneShot(expr string) bool { return len(expr) > 3 && expr[:3] == "at(" }

// Close stops firing.
func (r *Runner) Close() {
	r.mu.Lock()
	if !r.closed {
		close(r.stopped)
	}
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.stopWatch()
	r.wg.Wait()
}

// Get returns a schedule.
func (r *Runner) Get(group, name string) (*Schedule, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.scheds[key(group, name)]; e != nil && e.s != nil {
		return e.s, nil
	}
	return nil, function.Errorf(ErrNotFound, "Schedule %s does not exist.", name)
}

// List returns schedules by group and name.
func (r *Runner) List() []*Schedule {
	r.mu.Lock()
	out := make([]*Schedule, 0, len(r.scheds))
	for _, e := range r.scheds {
		if e.s != nil {
			out = append(out, e.s)
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return key(out[i].Group, out[i].Name) < key(out[j].Group, out[j].Name) })
	return out
}

// Put creates (create true) or replaces a schedule.
func (r *Runner) Put(ctx context.Context, s *Schedule, create bool) error {
	k := key(s.Group, s.Name)
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	var rev uint64
	if create {
		rev, err = r.kv.Create(ctx, k, data)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return function.Errorf(ErrExists, "Schedule %s already exists.", s.Name)
		}
	} else {
		r.mu.Lock()
		cur := r.scheds[k]
		r.mu.Unlock()
		if cur == nil || cur.s == nil {
			return function.Errorf(ErrNotFound, "Schedule %s does not exist.", s.Name)
		}
		rev, err = r.kv.Update(ctx, k, data, cur.rev)
	}
	if err != nil {
		return fmt.Errorf("store schedule: %w", err)
	}
	r.set(k, s, rev)
	r.arm()
	return nil
}

// Delete removes a schedule.
func (r *Runner) Delete(ctx context.Context, group, name string) error {
	k := key(group, name)
	r.mu.Lock()
	cur := r.scheds[k]
	r.mu.Unlock()
	if cur == nil || cur.s == nil {
		return function.Errorf(ErrNotFound, "Schedule %s does not exist.", name)
	}
	if err := r.kv.Delete(ctx, k, jetstream.LastRevision(cur.rev)); err != nil {
		return fmt.Errorf("delete schedule: %w", err)
	}
	r.set(k, nil, cur.rev+1)
	r.arm()
	return nil
}

// NextRun is when a schedule fires next (zero when it will not: disabled,
// past its end, or a one-shot already fired).
func (r *Runner) NextRun(group, name string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.scheds[key(group, name)]; e != nil && e.s != nil && e.s.State == "ENABLED" {
		return e.next
	}
	return time.Time{}
}
