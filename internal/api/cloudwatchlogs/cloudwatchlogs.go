// Package cloudwatchlogs serves the part of the CloudWatch Logs API
// (JSON 1.1, X-Amz-Target: Logs_20140328.*) that reads functions' logs:
// each function's log group /aws/lambda/NAME, one log stream per instance
// named as Lambda names them, events with their times, filter patterns,
// and retention. `aws logs tail --follow` polls FilterLogEvents.
package cloudwatchlogs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/store"
)

// TargetPrefix starts the X-Amz-Target of every CloudWatch Logs request.
const TargetPrefix = "Logs_20140328."

// Limits of the operations, as CloudWatch Logs has them.
const (
	maxGroups       = 50
	maxStreams      = 50
	maxEvents       = 10000
	maxResponseSize = 1 << 20
)

// API serves CloudWatch Logs.
type API struct {
	st     *store.Store
	reg    *registry.Registry
	auth   auth.Authorizer
	log    *slog.Logger
	region string
}

// New returns the API; authz decides what each caller may do.
func New(st *store.Store, reg *registry.Registry, authz auth.Authorizer, log *slog.Logger, region string) *API {
	return &API{st: st, reg: reg, auth: authz, log: log, region: region}
}

// apiError is an error in CloudWatch Logs' JSON shape.
type apiError struct {
	status int
	typ    string
	msg    string
}

func (e *apiError) Error() string { return e.typ + ": " + e.msg }

func invalid(format string, args ...any) error {
	return &apiError{400, "InvalidParameterException", fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &apiError{400, "ResourceNotFoundException", fmt.Sprintf(format, args...)}
}

// toWire maps every error of the layers below to its wire form.
func (a *API) toWire(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, registry.ErrNotFound):
		return &apiError{400, "ResourceNotFoundException", "The specified log group does not exist."}
	case store.Unavailable(err):
		return &apiError{503, "ServiceUnavailableException", store.Explain(err)}
	}
	if d, ok := errors.AsType[*auth.Denied](err); ok {
		return &apiError{400, "AccessDeniedException", d.Error()}
	}
	a.log.Error("cloudwatch logs: internal error", "err", err)
	return &apiError{500, "ServiceUnavailableException", "internal error: " + err.Error()}
}

type op struct {
	action string // IAM action
	run    func(ctx context.Context, body []byte) (any, error)
}

func (a *API) ops() map[string]op {
	return map[string]op{
		"DescribeLogGroups":     {"logs:DescribeLogGroups", a.describeGroups},
		"DescribeLogStreams":    {"logs:DescribeLogStreams", a.describeStreams},
		"GetLogEvents":          {"logs:GetLogEvents", a.getEvents},
		"FilterLogEvents":       {"logs:FilterLogEvents", a.filterEvents},
		"PutRetentionPolicy":    {"logs:PutRetentionPolicy", a.putRetention},
		"DeleteRetentionPolicy": {"logs:DeleteRetentionPolicy", a.deleteRetention},
	}
}

// ServeHTTP serves one request; authorization is per operation on the
// log group it names (checked in each operation), as IAM has it.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	o, ok := a.ops()[name]
	if !ok {
		writeError(w, &apiError{400, "UnknownOperationException", "Stratus does not serve the CloudWatch Logs operation " + name})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, a.toWire(invalid("unreadable request body")))
		return
	}
	ctx := withAction(r.Context(), o.action)
	out, err := o.run(ctx, body)
	if err != nil {
		writeError(w, a.toWire(err))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	w.WriteHeader(e.status)
	b, _ := json.Marshal(map[string]string{"__type": e.typ, "message": e.msg})
	_, _ = w.Write(b)
}

type actionKey struct{}

func withAction(ctx context.Context, action string) context.Context {
	return context.WithValue(ctx, actionKey{}, action)
}

// authorize checks the request's action on a log group (or "*").
func (a *API) authorize(ctx context.Context, group string) error {
	if a.auth == nil {
		return &auth.Denied{Action: "logs", Resource: group}
	}
	action, _ := ctx.Value(actionKey{}).(string)
	resource := "*"
	if group != "" {
		resource = a.groupARN(group) + ":*"
	}
	return a.auth.Authorize(ctx, action, resource)
}

func (a *API) groupARN(group string) string {
	return "arn:aws:logs:" + a.region + ":" + function.AccountID + ":log-group:" + group
}

func decode(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &apiError{400, "SerializationException", "Malformed request body: " + err.Error()}
	}
	return nil
}

// functionOf is the function whose log group is named (by name or ARN).
func (a *API) functionOf(group, identifier string) (string, error) {
	if group == "" {
		group = identifier
	}
	if i := strings.Index(group, ":log-group:"); i >= 0 {
		group = strings.TrimSuffix(group[i+len(":log-group:"):], ":*")
	}
	fn, ok := strings.CutPrefix(group, "/aws/lambda/")
	if group == "" {
		return "", invalid("logGroupName is required")
	}
	if !ok || function.ValidateName(fn) != nil {
		return "", notFound("The specified log group does not exist.")
	}
	if _, err := a.reg.Get(fn); err != nil {
		return "", notFound("The specified log group does not exist.")
	}
	return fn, nil
}

// ms is a time as CloudWatch Logs counts it: milliseconds since the epoch.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMs(v *int64) time.Time {
	if v == nil || *v <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(*v)
}

func (a *API) describeGroups(ctx context.Context, body []byte) (any, error) {
	var in struct {
		Prefix    string `json:"logGroupNamePrefix"`
		Pattern   string `json:"logGroupNamePattern"`
		Limit     int    `json:"limit"`
		NextToken string `json:"nextToken"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.Prefix != "" && in.Pattern != "" {
		return nil, invalid("logGroupNamePrefix and logGroupNamePattern are mutually exclusive")
	}
	limit, err := limitOf(in.Limit, maxGroups)
	if err != nil {
		return nil, err
	}
	if err := a.authorize(ctx, ""); err != nil {
		return nil, err
	}
	fns := a.reg.List()
	slices.SortFunc(fns, func(x, y *function.Function) int { return strings.Compare(x.Name, y.Name) })
	type group struct {
		Name          string `json:"logGroupName"`
		ARN           string `json:"arn"`
		GroupARN      string `json:"logGroupArn"`
		Created       int64  `json:"creationTime"`
		RetentionDays *int   `json:"retentionInDays,omitempty"`
		MetricFilters int    `json:"metricFilterCount"`
		StoredBytes   int64  `json:"storedBytes"`
		Class         string `json:"logGroupClass"`
	}
	out := struct {
		Groups    []group `json:"logGroups"`
		NextToken string  `json:"nextToken,omitempty"`
	}{Groups: []group{}}
	for _, fn := range fns {
		name := function.LogGroup(fn.Name)
		if name <= in.NextToken || !strings.HasPrefix(name, in.Prefix) || in.Pattern != "" && !strings.Contains(strings.ToLower(name), strings.ToLower(in.Pattern)) {
			continue
		}
		if len(out.Groups) == limit {
			out.NextToken = out.Groups[len(out.Groups)-1].Name
			break
		}
		g := group{Name: name, ARN: a.groupARN(name) + ":*", GroupARN: a.groupARN(name), Created: ms(a.created(fn)), Class: "STANDARD"}
		if s := logs.Group(a.st, fn.Name); s.RetentionDays > 0 {
			g.RetentionDays = &s.RetentionDays
		}
		out.Groups = append(out.Groups, g)
	}
	return out, nil
}

// created is when a function's log group came to be: its first version.
func (a *API) created(fn *function.Function) time.Time { return fn.LastModified }

func limitOf(v, max int) (int, error) {
	switch {
	case v == 0:
		return max, nil
	case v < 1 || v > max:
		return 0, invalid("limit must be between 1 and %d", max)
	}
	return v, nil
}

func (a *API) describeStreams(ctx context.Context, body []byte) (any, error) {
	var in struct {
		Group      string `json:"logGroupName"`
		Identifier string `json:"logGroupIdentifier"`
		Prefix     string `json:"logStreamNamePrefix"`
		OrderBy    string `json:"orderBy"`
		Descending bool   `json:"descending"`
		Limit      int    `json:"limit"`
		NextToken  string `json:"nextToken"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	fn, err := a.functionOf(in.Group, in.Identifier)
	if err != nil {
		return nil, err
	}
	if err := a.authorize(ctx, function.LogGroup(fn)); err != nil {
		return nil, err
	}
	limit, err := limitOf(in.Limit, maxStreams)
	if err != nil {
		return nil, err
	}
	if in.OrderBy != "" && in.OrderBy != "LogStreamName" && in.OrderBy != "LastEventTime" {
		return nil, invalid("orderBy must be LogStreamName or LastEventTime")
	}
	byTime := in.OrderBy == "LastEventTime"
	if byTime && in.Prefix != "" {
		return nil, invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
	}
	all, err := logs.Streams(ctx, a.st, fn, byTime)
	if err != nil {
		return nil, err
	}
	var streams []logs.StreamInfo
	for _, s := range all {
		if strings.HasPrefix(s.Name, in.Prefix) {
			streams = append(streams, s)
		}
	}
	if byTime {
		slices.SortStableFunc(streams, func(x, y logs.StreamInfo) int { return x.Last.Compare(y.Last) })
	}
	if in.Descending {
		slices.Reverse(streams)
	}
	start := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(in.NextToken)
		if err != nil || n < 0 || n > len(streams) {
			return nil, invalid("The specified nextToken is invalid.")
		}
		start = n
	}
	type stream struct {
		Name          string `json:"logStreamName"`
		Created       int64  `json:"creationTime"`
		FirstEvent    int64  `json:"firstEventTimestamp"`
		LastEvent     int64  `json:"lastEventTimestamp"`
		LastIngestion int64  `json:"lastIngestionTime"`
		ARN           string `json:"arn"`
		StoredBytes   int64  `json:"storedBytes"`
	}
	out := struct {
		Streams   []stream `json:"logStreams"`
		NextToken string   `json:"nextToken,omitempty"`
	}{Streams: []stream{}}
	end := min(start+limit, len(streams))
	for _, s := range streams[start:end] {
		if !byTime {
			if err := logs.StreamTimes(ctx, a.st, fn, &s); err != nil {
				return nil, err
			}
		}
		out.Streams = append(out.Streams, stream{Name: s.Name, Created: ms(s.First), FirstEvent: ms(s.First), LastEvent: ms(s.Last), LastIngestion: ms(s.Last),
			ARN: a.groupARN(function.LogGroup(fn)) + ":log-stream:" + s.Name})
	}
	if end < len(streams) {
		out.NextToken = strconv.Itoa(end)
	}
	return out, nil
}

// event is an event as GetLogEvents and FilterLogEvents answer it.
type event struct {
	Stream    string `json:"logStreamName,omitempty"`
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
	Ingestion int64  `json:"ingestionTime"`
	ID        string `json:"eventId,omitempty"`
}

// token places a read in the store: "SEQ/INDEX" of the next event.
func token(seq uint64, index int) string {
	return strconv.FormatUint(seq, 10) + "/" + strconv.Itoa(index)
}

func parseToken(t string) (uint64, int, error) {
	s, i, ok := strings.Cut(t, "/")
	seq, err1 := strconv.ParseUint(s, 10, 64)
	idx, err2 := strconv.Atoi(i)
	if !ok || err1 != nil || err2 != nil || seq == 0 || idx < 0 {
		return 0, 0, invalid("The specified nextToken is invalid.")
	}
	return seq, idx, nil
}

func eventID(ev logs.Event) string {
	return fmt.Sprintf("%020d%08d", ev.Seq, ev.Index)
}

func (a *API) getEvents(ctx context.Context, body []byte) (any, error) {
	var in struct {
		Group         string `json:"logGroupName"`
		Identifier    string `json:"logGroupIdentifier"`
		Stream        string `json:"logStreamName"`
		StartTime     *int64 `json:"startTime"`
		EndTime       *int64 `json:"endTime"`
		NextToken     string `json:"nextToken"`
		Limit         int    `json:"limit"`
		StartFromHead bool   `json:"startFromHead"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	fn, err := a.functionOf(in.Group, in.Identifier)
	if err != nil {
		return nil, err
	}
	if err := a.authorize(ctx, function.LogGroup(fn)); err != nil {
		return nil, err
	}
	if in.Stream == "" {
		return nil, invalid("logStreamName is required")
	}
	limit, err := limitOf(in.Limit, maxEvents)
	if err != nil {
		return nil, err
	}
	q := logs.Query{Function: fn, Streams: []string{in.Stream}, Start: fromMs(in.StartTime), End: fromMs(in.EndTime)}
	forward := in.StartFromHead
	var before uint64 // a backward token: events before this message
	var beforeIdx int
	switch {
	case strings.HasPrefix(in.NextToken, "f/"):
		forward = true
		if q.StartSeq, q.StartIndex, err = parseToken(in.NextToken[2:]); err != nil {
			return nil, err
		}
	case strings.HasPrefix(in.NextToken, "b/"):
		forward = false
		if before, beforeIdx, err = parseToken(in.NextToken[2:]); err != nil {
			return nil, err
		}
	case in.NextToken != "":
		return nil, invalid("The specified nextToken is invalid.")
	}
	var evs []logs.Event
	size := 0
	err = logs.Read(ctx, a.st, q, func(ev logs.Event) error {
		if before > 0 && (ev.Seq > before || ev.Seq == before && ev.Index >= beforeIdx) {
			return logs.ErrEnough
		}
		evs = append(evs, ev)
		size += len(ev.Message) + 26
		if forward && (len(evs) == limit || size >= maxResponseSize) {
			return logs.ErrEnough
		}
		if !forward && len(evs) > limit {
			evs = evs[1:] // the latest ones are kept
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := struct {
		Events   []event `json:"events"`
		Forward  string  `json:"nextForwardToken"`
		Backward string  `json:"nextBackwardToken"`
	}{Events: []event{}}
	for _, ev := range evs {
		out.Events = append(out.Events, event{Timestamp: ms(ev.Time), Message: ev.Message, Ingestion: ms(ev.Time)})
	}
	// At the end, the tokens given are given back: that is how readers
	// know they have it all.
	out.Forward, out.Backward = in.NextToken, in.NextToken
	if len(evs) > 0 {
		last, first := evs[len(evs)-1], evs[0]
		out.Forward = "f/" + token(last.Seq, last.Index+1)
		out.Backward = "b/" + token(first.Seq, first.Index)
	} else if in.NextToken == "" {
		out.Forward, out.Backward = "f/"+token(1, 0), "b/"+token(1, 0)
	}
	return out, nil
}

func (a *API) filterEvents(ctx context.Context, body []byte) (any, error) {
	var in struct {
		Group        string   `json:"logGroupName"`
		Identifier   string   `json:"logGroupIdentifier"`
		Streams      []string `json:"logStreamNames"`
		StreamPrefix string   `json:"logStreamNamePrefix"`
		StartTime    *int64   `json:"startTime"`
		EndTime      *int64   `json:"endTime"`
		Pattern      string   `json:"filterPattern"`
		NextToken    string   `json:"nextToken"`
		Limit        int      `json:"limit"`
		Interleaved  *bool    `json:"interleaved"`
		Unmask       bool     `json:"unmask"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	fn, err := a.functionOf(in.Group, in.Identifier)
	if err != nil {
		return nil, err
	}
	if err := a.authorize(ctx, function.LogGroup(fn)); err != nil {
		return nil, err
	}
	if len(in.Streams) > 0 && in.StreamPrefix != "" {
		return nil, invalid("logStreamNames and logStreamNamePrefix are mutually exclusive")
	}
	limit, err := limitOf(in.Limit, maxEvents)
	if err != nil {
		return nil, err
	}
	match, err := ParsePattern(in.Pattern)
	if err != nil {
		return nil, err
	}
	q := logs.Query{Function: fn, Streams: in.Streams, Start: fromMs(in.StartTime), End: fromMs(in.EndTime), Match: match}
	if in.StreamPrefix != "" {
		q.Match = func(ev logs.Event) bool { return strings.HasPrefix(ev.Stream, in.StreamPrefix) && match(ev) }
	}
	if in.NextToken != "" {
		if q.StartSeq, q.StartIndex, err = parseToken(in.NextToken); err != nil {
			return nil, err
		}
	}
	out := struct {
		Events    []event  `json:"events"`
		Searched  []string `json:"searchedLogStreams"`
		NextToken string   `json:"nextToken,omitempty"`
	}{Events: []event{}, Searched: []string{}}
	size := 0
	err = logs.Read(ctx, a.st, q, func(ev logs.Event) error {
		if len(out.Events) == limit || size >= maxResponseSize {
			out.NextToken = token(ev.Seq, ev.Index)
			return logs.ErrEnough
		}
		out.Events = append(out.Events, event{Stream: ev.Stream, Timestamp: ms(ev.Time), Message: ev.Message, Ingestion: ms(ev.Time), ID: eventID(ev)})
		size += len(ev.Message) + 64
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// retentionDays are the values PutRetentionPolicy takes.
var retentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

func (a *API) putRetention(ctx context.Context, body []byte) (any, error) {
	var in struct {
		Group string `json:"logGroupName"`
		Days  int    `json:"retentionInDays"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	fn, err := a.functionOf(in.Group, "")
	if err != nil {
		return nil, err
	}
	if err := a.authorize(ctx, function.LogGroup(fn)); err != nil {
		return nil, err
	}
	if !slices.Contains(retentionDays, in.Days) {
		return nil, invalid("1 validation error detected: Value '%d' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: %v", in.Days, retentionDays)
	}
	if err := logs.SetGroup(ctx, a.st, fn, logs.GroupSettings{RetentionDays: in.Days}); err != nil {
		return nil, err
	}
	return struct{}{}, logs.Expire(ctx, a.st, fn)
}

func (a *API) deleteRetention(ctx context.Context, body []byte) (any, error) {
	var in struct {
		Group string `json:"logGroupName"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	fn, err := a.functionOf(in.Group, "")
	if err != nil {
		return nil, err
	}
	if err := a.authorize(ctx, function.LogGroup(fn)); err != nil {
		return nil, err
	}
	return struct{}{}, logs.SetGroup(ctx, a.st, fn, logs.GroupSettings{})
}
