// Package scheduler speaks the EventBridge Scheduler API (REST-JSON):
// CreateSchedule, GetSchedule, UpdateSchedule, DeleteSchedule and
// ListSchedules, with Lambda functions as targets and the default group.
package scheduler

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/schedule"
	"github.com/stratus-faas/stratus/internal/store"
)

// API serves /schedules.
type API struct {
	run    *schedule.Runner
	reg    *registry.Registry
	log    *slog.Logger
	region string
	now    func() time.Time
	auth   auth.Authorizer
}

// New returns the API; authz decides what each caller may do (nil allows
// nothing).
func New(run *schedule.Runner, reg *registry.Registry, log *slog.Logger, region string, authz auth.Authorizer) *API {
	return &API{run: run, reg: reg, log: log, region: region, now: time.Now, auth: authz}
}

// Register adds the routes.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /schedules/{name}", a.h("CreateSchedule", func(w http.ResponseWriter, r *http.Request) error { return a.put(w, r, true) }))
	mux.HandleFunc("PUT /schedules/{name}", a.h("UpdateSchedule", func(w http.ResponseWriter, r *http.Request) error { return a.put(w, r, false) }))
	mux.HandleFunc("GET /schedules/{name}", a.h("GetSchedule", a.get))
	mux.HandleFunc("DELETE /schedules/{name}", a.h("DeleteSchedule", a.delete))
	mux.HandleFunc("GET /schedules", a.h("ListSchedules", a.list))
}

const defaultGroup = "default"

func (a *API) arn(s *schedule.Schedule) string {
	return "arn:aws:scheduler:" + a.region + ":" + function.AccountID + ":schedule/" + s.Group + "/" + s.Name
}

// wireError is an EventBridge Scheduler error as its clients decode it.
type wireError struct {
	Status  int
	Code    string
	Message string
}

// toWire maps every error of the layers below to Scheduler's error. It is
// the one place that does.
func (a *API) toWire(err error) wireError {
	msg := function.Message(err)
	var denied *auth.Denied
	switch {
	case errors.As(err, &denied):
		return wireError{403, "AccessDeniedException", denied.Error()}
	case errors.Is(err, schedule.ErrNotFound):
		return wireError{404, "ResourceNotFoundException", msg}
	case errors.Is(err, schedule.ErrExists):
		return wireError{409, "ConflictException", msg}
	case errors.Is(err, schedule.ErrInvalid), errors.Is(err, function.ErrInvalid):
		return wireError{400, "ValidationException", msg}
	case store.Unavailable(err):
		return wireError{503, "ServiceUnavailableException", store.Explain(err)}
	}
	a.log.Error("scheduler", "err", err)
	return wireError{500, "InternalServerException", msg}
}

// h adapts a handler that returns its error, so that errors reach the
// wire in one place. The caller must first be allowed scheduler:ACTION
// on the schedule the request names.
func (a *API) h(action string, fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	action = "scheduler:" + action
	return func(w http.ResponseWriter, r *http.Request) {
		resource := "*"
		if name := r.PathValue("name"); name != "" {
			resource = "arn:aws:scheduler:" + a.region + ":" + function.AccountID + ":schedule/" + groupOf(r) + "/" + name
		}
		err := auth.Ask(r.Context(), a.auth, action, resource)
		if err == nil {
			err = fn(w, r)
		}
		if err != nil {
			e := a.toWire(err)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-ErrorType", e.Code)
			w.WriteHeader(e.Status)
			_ = json.NewEncoder(w).Encode(map[string]string{"Message": e.Message})
		}
	}
}

func group(g string) (string, error) {
	if g == "" || g == defaultGroup {
		return defaultGroup, nil
	}
	return "", function.Errorf(schedule.ErrNotFound, "Schedule group %s does not exist; Stratus has the default group", g)
}

type target struct {
	Arn              string       `json:"Arn"`
	RoleArn          string       `json:"RoleArn"`
	Input            string       `json:"Input,omitempty"`
	RetryPolicy      *retryPolicy `json:"RetryPolicy,omitempty"`
	DeadLetterConfig *struct {
		Arn string `json:"Arn"`
	} `json:"DeadLetterConfig,omitempty"`
}

type retryPolicy struct {
	MaximumEventAgeInSeconds *int `json:"MaximumEventAgeInSeconds,omitempty"`
	MaximumRetryAttempts     *int `json:"MaximumRetryAttempts,omitempty"`
}

type scheduleInput struct {
	ScheduleExpression         string   `json:"ScheduleExpression"`
	ScheduleExpressionTimezone string   `json:"ScheduleExpressionTimezone"`
	Description                string   `json:"Description"`
	GroupName                  string   `json:"GroupName"`
	State                      string   `json:"State"`
	StartDate                  *float64 `json:"StartDate"`
	EndDate                    *float64 `json:"EndDate"`
	ActionAfterCompletion      string   `json:"ActionAfterCompletion"`
	FlexibleTimeWindow         *struct {
		Mode string `json:"Mode"`
	} `json:"FlexibleTimeWindow"`
	Target *target `json:"Target"`
}

func epoch(f *float64) *time.Time {
	if f == nil {
		return nil
	}
	t := time.UnixMilli(int64(*f * 1000)).UTC()
	return &t
}

func (a *API) put(w http.ResponseWriter, r *http.Request, create bool) error {
	var in scheduleInput
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err := json.Unmarshal(b, &in); err != nil {
		return function.Errorf(schedule.ErrInvalid, "invalid request body: %v", err)
	}
	g, err := group(in.GroupName)
	if err != nil {
		return err
	}
	if in.Target == nil || in.FlexibleTimeWindow == nil {
		return function.Errorf(schedule.ErrInvalid, "Target and FlexibleTimeWindow are required")
	}
	if in.FlexibleTimeWindow.Mode != "OFF" {
		return function.Errorf(schedule.ErrInvalid, "FlexibleTimeWindow mode %q is not supported; use OFF", in.FlexibleTimeWindow.Mode)
	}
	name, q, err := function.ParseRef(in.Target.Arn)
	if err == nil && strings.HasPrefix(in.Target.Arn, "arn:aws:lambda:") {
		_, err = a.reg.Resolve(name, q)
	} else {
		err = errors.New("not a Lambda function ARN")
	}
	if err != nil {
		return function.Errorf(schedule.ErrInvalid, "Target.Arn %s is not a function of this Stratus (Stratus schedules invoke Lambda functions)", in.Target.Arn)
	}
	now := a.now().UTC()
	s := &schedule.Schedule{
		Name: r.PathValue("name"), Group: g, Expression: in.ScheduleExpression, Timezone: in.ScheduleExpressionTimezone,
		Description: in.Description, State: in.State, TargetARN: in.Target.Arn, RoleARN: in.Target.RoleArn, Input: in.Target.Input,
		StartDate: epoch(in.StartDate), EndDate: epoch(in.EndDate), ActionAfterCompletion: in.ActionAfterCompletion,
		Created: now, Modified: now, Retry: schedule.DefaultRetry,
	}
	if rp := in.Target.RetryPolicy; rp != nil {
		if rp.MaximumEventAgeInSeconds != nil {
			s.Retry.MaxAgeSeconds = *rp.MaximumEventAgeInSeconds
		}
		if rp.MaximumRetryAttempts != nil {
			s.Retry.MaxAttempts = *rp.MaximumRetryAttempts
		}
	}
	if dl := in.Target.DeadLetterConfig; dl != nil && dl.Arn != "" {
		if !strings.HasPrefix(dl.Arn, "arn:aws:sqs:") {
			return function.Errorf(schedule.ErrInvalid, "DeadLetterConfig.Arn must be an SQS queue ARN, not %s", dl.Arn)
		}
		s.DeadLetterARN = dl.Arn
	}
	if !create {
		cur, err := a.run.Get(g, s.Name)
		if err != nil {
			return err
		}
		s.Created = cur.Created // a rate keeps counting from creation
	}
	if _, err := s.Validate(); err != nil {
		return err
	}
	s.ARN = a.arn(s)
	if err := a.run.Put(r.Context(), s, create); err != nil {
		return err
	}
	writeJSON(w, map[string]string{"ScheduleArn": a.arn(s)})
	return nil
}

func (a *API) targetOut(s *schedule.Schedule) target {
	retry := s.Retry
	if retry == (schedule.RetryPolicy{}) {
		retry = schedule.DefaultRetry // schedules stored before retry policies
	}
	t := target{Arn: s.TargetARN, RoleArn: s.RoleARN, Input: s.Input,
		RetryPolicy: &retryPolicy{MaximumEventAgeInSeconds: &retry.MaxAgeSeconds, MaximumRetryAttempts: &retry.MaxAttempts}}
	if s.DeadLetterARN != "" {
		t.DeadLetterConfig = &struct {
			Arn string `json:"Arn"`
		}{s.DeadLetterARN}
	}
	return t
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func secs(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func (a *API) out(s *schedule.Schedule) map[string]any {
	o := map[string]any{
		"Arn": a.arn(s), "Name": s.Name, "GroupName": s.Group, "ScheduleExpression": s.Expression,
		"State": s.State, "Description": s.Description, "ActionAfterCompletion": s.ActionAfterCompletion,
		"FlexibleTimeWindow": map[string]string{"Mode": "OFF"},
		"Target":             a.targetOut(s),
		"CreationDate":       secs(s.Created), "LastModificationDate": secs(s.Modified),
	}
	if s.Timezone != "" {
		o["ScheduleExpressionTimezone"] = s.Timezone
	}
	if s.StartDate != nil {
		o["StartDate"] = secs(*s.StartDate)
	}
	if s.EndDate != nil {
		o["EndDate"] = secs(*s.EndDate)
	}
	return o
}

func (a *API) get(w http.ResponseWriter, r *http.Request) error {
	g, err := group(r.URL.Query().Get("groupName"))
	if err != nil {
		return err
	}
	s, err := a.run.Get(g, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, a.out(s))
	return nil
}

func (a *API) delete(w http.ResponseWriter, r *http.Request) error {
	g, err := group(r.URL.Query().Get("groupName"))
	if err == nil {
		err = a.run.Delete(r.Context(), g, r.PathValue("name"))
	}
	if err != nil {
		return err
	}
	writeJSON(w, map[string]string{})
	return nil
}

func (a *API) list(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	prefix, state, grp := q.Get("NamePrefix"), q.Get("State"), q.Get("ScheduleGroup")
	var all []*schedule.Schedule
	for _, s := range a.run.List() {
		if strings.HasPrefix(s.Name, prefix) && (state == "" || s.State == state) && (grp == "" || s.Group == grp) {
			all = append(all, s)
		}
	}
	start, limit := 0, 100
	if n, err := strconv.Atoi(q.Get("MaxResults")); err == nil && n > 0 {
		limit = n
	}
	if n, err := strconv.Atoi(q.Get("NextToken")); err == nil && n >= 0 && n <= len(all) {
		start = n
	}
	items := []map[string]any{}
	for _, s := range all[start:min(len(all), start+limit)] {
		items = append(items, map[string]any{
			"Arn": a.arn(s), "Name": s.Name, "GroupName": s.Group, "State": s.State,
			"CreationDate": secs(s.Created), "LastModificationDate": secs(s.Modified),
			"Target": map[string]string{"Arn": s.TargetARN},
		})
	}
	out := map[string]any{"Schedules": items}
	if start+limit < len(all) {
		out["NextToken"] = strconv.Itoa(start + limit)
	}
	writeJSON(w, out)
	return nil
}

// groupOf is the schedule group a request names: in the query, or in
// the body of a create or update (read whole by then; peeked, not
// consumed).
func groupOf(r *http.Request) string {
	if g := r.URL.Query().Get("groupName"); g != "" {
		return g
	}
	if b, ok := r.Body.(interface{ Bytes() []byte }); ok {
		var in struct{ GroupName string }
		if json.Unmarshal(b.Bytes(), &in) == nil && in.GroupName != "" {
			return in.GroupName
		}
	}
	return defaultGroup
}
