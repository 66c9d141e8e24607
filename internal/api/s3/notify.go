package s3

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/objects"
)

// The event types a configuration may name.
var eventTypes = map[string]bool{
	"s3:ObjectCreated:*": true, "s3:ObjectCreated:Put": true, "s3:ObjectCreated:Post": true, "s3:ObjectCreated:Copy": true,
	"s3:ObjectCreated:CompleteMultipartUpload": true, "s3:ObjectRemoved:*": true, "s3:ObjectRemoved:Delete": true,
	"s3:ObjectRemoved:DeleteMarkerCreated": true,
}

type filterRule struct {
	Name  string `xml:"Name"`
	Value string `xml:"Value"`
}

// notificationIn is PutBucketNotificationConfiguration's body. The REST
// API names the Lambda target CloudFunctionConfiguration/CloudFunction;
// LambdaFunctionConfiguration is taken too.
type notificationIn struct {
	Functions []struct {
		ID       string       `xml:"Id"`
		Function string       `xml:"CloudFunction"`
		Lambda   string       `xml:"LambdaFunctionArn"`
		Events   []string     `xml:"Event"`
		Rules    []filterRule `xml:"Filter>S3Key>FilterRule"`
	} `xml:"CloudFunctionConfiguration"`
	Lambdas []struct {
		ID       string       `xml:"Id"`
		Function string       `xml:"CloudFunction"`
		Lambda   string       `xml:"LambdaFunctionArn"`
		Events   []string     `xml:"Event"`
		Rules    []filterRule `xml:"Filter>S3Key>FilterRule"`
	} `xml:"LambdaFunctionConfiguration"`
	Queues []struct {
		ID     string       `xml:"Id"`
		Queue  string       `xml:"Queue"`
		Events []string     `xml:"Event"`
		Rules  []filterRule `xml:"Filter>S3Key>FilterRule"`
	} `xml:"QueueConfiguration"`
	Topics      []struct{} `xml:"TopicConfiguration"`
	EventBridge *struct{}  `xml:"EventBridgeConfiguration"`
}

func (a *API) putNotification(w http.ResponseWriter, r *http.Request, b string) error {
	if err := a.allow(r, "s3:PutBucketNotification", bucketARN(b)); err != nil {
		return err
	}
	if _, err := a.st.Bucket(b); err != nil {
		return err
	}
	var in notificationIn
	if err := readXML(r, 256<<10, &in); err != nil {
		return err
	}
	if len(in.Topics) > 0 || in.EventBridge != nil {
		return errInvalidArgument("SNS topics and EventBridge are not available on this server: use a function or a queue.")
	}
	cfg := &objects.Notifications{}
	var all []objects.Target
	add := func(list *[]objects.Target, id, arn string, events []string, rules []filterRule) error {
		t := objects.Target{ID: id, ARN: arn, Events: events}
		if t.ID == "" {
			t.ID = uuid.NewString()
		}
		if len(events) == 0 {
			return errInvalidArgument("A notification configuration must name at least one event.")
		}
		for _, e := range events {
			if !eventTypes[e] {
				return errInvalidArgument("The event " + e + " is not supported for notification")
			}
		}
		for _, rule := range rules {
			switch strings.ToLower(rule.Name) {
			case "prefix":
				if t.Prefix != "" {
					return errInvalidArgument("Cannot specify more than one prefix rule in a filter.")
				}
				t.Prefix = rule.Value
			case "suffix":
				if t.Suffix != "" {
					return errInvalidArgument("Cannot specify more than one suffix rule in a filter.")
				}
				t.Suffix = rule.Value
			default:
				return errInvalidArgument("filter rule name must be either prefix or suffix")
			}
		}
		if a.opts.Notify == nil {
			return errInvalidArgument("Unable to validate the following destination configurations: no destinations on this server")
		}
		if err := a.opts.Notify.Check(arn, b); err != nil {
			return errInvalidArgument("Unable to validate the following destination configurations: " + arn + ": " + err.Error())
		}
		for _, o := range all {
			if overlaps(o, t) {
				return errInvalidArgument("Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the prefixes are overlapping for the same event type.")
			}
		}
		all = append(all, t)
		*list = append(*list, t)
		return nil
	}
	for _, f := range append(in.Functions, in.Lambdas...) {
		arn := f.Function
		if arn == "" {
			arn = f.Lambda
		}
		if err := add(&cfg.Functions, f.ID, arn, f.Events, f.Rules); err != nil {
			return err
		}
	}
	for _, q := range in.Queues {
		if err := add(&cfg.Queues, q.ID, q.Queue, q.Events, q.Rules); err != nil {
			return err
		}
	}
	if len(all) == 0 {
		cfg = nil
	}
	if err := a.st.UpdateBucket(r.Context(), b, func(bk *objects.Bucket) error { bk.Notifications = cfg; return nil }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// overlaps: two configurations that could both match one event.
func overlaps(x, y objects.Target) bool {
	shared := false
	for _, a := range x.Events {
		for _, b := range y.Events {
			if a == b || wildcardCovers(a, b) || wildcardCovers(b, a) {
				shared = true
			}
		}
	}
	prefixes := strings.HasPrefix(x.Prefix, y.Prefix) || strings.HasPrefix(y.Prefix, x.Prefix)
	suffixes := strings.HasSuffix(x.Suffix, y.Suffix) || strings.HasSuffix(y.Suffix, x.Suffix)
	return shared && prefixes && suffixes
}

func wildcardCovers(pattern, e string) bool {
	p, ok := strings.CutSuffix(pattern, "*")
	return ok && strings.HasPrefix(e, p)
}

func (a *API) getNotification(w http.ResponseWriter, r *http.Request, b string) error {
	if err := a.allow(r, "s3:GetBucketNotification", bucketARN(b)); err != nil {
		return err
	}
	bk, err := a.st.Bucket(b)
	if err != nil {
		return err
	}
	type fn struct {
		ID       string       `xml:"Id"`
		Function string       `xml:"CloudFunction"`
		Events   []string     `xml:"Event"`
		Rules    []filterRule `xml:"Filter>S3Key>FilterRule,omitempty"`
	}
	type queue struct {
		ID     string       `xml:"Id"`
		Queue  string       `xml:"Queue"`
		Events []string     `xml:"Event"`
		Rules  []filterRule `xml:"Filter>S3Key>FilterRule,omitempty"`
	}
	out := struct {
		XMLName   xml.Name `xml:"NotificationConfiguration"`
		NS        string   `xml:"xmlns,attr"`
		Queues    []queue  `xml:"QueueConfiguration"`
		Functions []fn     `xml:"CloudFunctionConfiguration"`
	}{NS: xmlns}
	rules := func(t objects.Target) []filterRule {
		var out []filterRule
		if t.Prefix != "" {
			out = append(out, filterRule{"Prefix", t.Prefix})
		}
		if t.Suffix != "" {
			out = append(out, filterRule{"Suffix", t.Suffix})
		}
		return out
	}
	if n := bk.Notifications; n != nil {
		for _, t := range n.Functions {
			out.Functions = append(out.Functions, fn{t.ID, t.ARN, t.Events, rules(t)})
		}
		for _, t := range n.Queues {
			out.Queues = append(out.Queues, queue{t.ID, t.ARN, t.Events, rules(t)})
		}
	}
	return writeXML(w, http.StatusOK, out)
}

func matches(t objects.Target, event, key string) bool {
	if !strings.HasPrefix(key, t.Prefix) || !strings.HasSuffix(key, t.Suffix) {
		return false
	}
	for _, e := range t.Events {
		if e == "s3:"+event || wildcardCovers(e, "s3:"+event) {
			return true
		}
	}
	return false
}

// eventKey is an object key as S3 events carry it: URL-encoded, with +
// for a space, slashes kept.
func eventKey(k string) string { return strings.ReplaceAll(url.QueryEscape(k), "%2F", "/") }

// notify delivers event on o to each destination whose configuration
// matches, durably, before the request is answered: an acknowledged
// write's events run even if the server dies right after. A delivery that
// fails is logged; the write stands, as on S3.
func (a *API) notify(r *http.Request, event string, o *objects.Object) {
	if o == nil || a.opts.Notify == nil {
		return
	}
	bk, err := a.st.Bucket(o.Bucket)
	if err != nil || bk.Notifications == nil {
		return
	}
	n := bk.Notifications
	var targets []objects.Target
	for _, t := range append(append([]objects.Target{}, n.Functions...), n.Queues...) {
		if matches(t, event, o.Key) {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		return
	}
	principal := "AWS:" + auth.Account
	if p := auth.From(r.Context()); p != nil && p.UserID != "" {
		principal = "AWS:" + p.UserID
	}
	ip := r.RemoteAddr
	if h, _, err := net.SplitHostPort(ip); err == nil {
		ip = h
	}
	reqID := requestID(r)
	for _, t := range targets {
		obj := map[string]any{"key": eventKey(o.Key), "sequencer": o.Sequencer}
		if strings.HasPrefix(event, "ObjectCreated") {
			obj["size"], obj["eTag"] = o.Size, o.ETag
		}
		rec := map[string]any{
			"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": a.opts.Region,
			"eventTime": time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), "eventName": event,
			"userIdentity":      map[string]string{"principalId": principal},
			"requestParameters": map[string]string{"sourceIPAddress": ip},
			"responseElements":  map[string]string{"x-amz-request-id": reqID, "x-amz-id-2": reqID},
			"s3": map[string]any{
				"s3SchemaVersion": "1.0", "configurationId": t.ID,
				"bucket": map[string]any{"name": o.Bucket, "ownerIdentity": map[string]string{"principalId": auth.Account}, "arn": bucketARN(o.Bucket)},
				"object": obj,
			},
		}
		body, _ := json.Marshal(map[string]any{"Records": []any{rec}})
		// One id per event and destination: a retried delivery runs once.
		id := fmt.Sprintf("s3-%s-%s-%s", o.Sequencer, t.ID, strings.ReplaceAll(event, ":", "-"))
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		if err := a.opts.Notify.Deliver(ctx, t.ARN, body, id); err != nil {
			a.log.Error("s3: event not delivered", "bucket", o.Bucket, "key", o.Key, "event", event, "destination", t.ARN, "err", err)
		}
		cancel()
	}
}

// requestID is the id the request is answered with (set by the server on
// the way in), for the event's responseElements.
func requestID(r *http.Request) string {
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok && id != "" {
		return id
	}
	return uuid.NewString()
}

type requestIDKey struct{}
