package sqs

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/queue"
)

// Outputs, in the JSON protocol's names; toXML renders them for query.
type (
	queueURLOut struct {
		QueueURL string `json:"QueueUrl"`
	}
	listOut struct {
		QueueURLs []string `json:"QueueUrls,omitempty"`
		NextToken string   `json:"NextToken,omitempty"`
	}
	dlSourcesOut struct {
		QueueURLs []string `json:"queueUrls"`
	}
	attrsOut struct {
		Attributes map[string]string `json:"Attributes,omitempty"`
	}
	tagsOut struct {
		Tags map[string]string `json:"Tags,omitempty"`
	}
	sendOut struct {
		ID               string `json:"Id,omitempty"`
		MessageID        string `json:"MessageId"`
		MD5OfBody        string `json:"MD5OfMessageBody"`
		MD5OfAttributes  string `json:"MD5OfMessageAttributes,omitempty"`
		MD5OfSystemAttrs string `json:"MD5OfMessageSystemAttributes,omitempty"`
	}
	batchError struct {
		ID          string `json:"Id"`
		SenderFault bool   `json:"SenderFault"`
		Code        string `json:"Code"`
		Message     string `json:"Message,omitempty"`
	}
	sendBatchOut struct {
		Successful []sendOut    `json:"Successful"`
		Failed     []batchError `json:"Failed"`
	}
	idEntry struct {
		ID string `json:"Id"`
	}
	idsOut struct {
		Successful []idEntry    `json:"Successful"`
		Failed     []batchError `json:"Failed"`
		kind       string       // result entry element name for XML
	}
	message struct {
		MessageID         string                     `json:"MessageId"`
		ReceiptHandle     string                     `json:"ReceiptHandle"`
		MD5OfBody         string                     `json:"MD5OfBody"`
		Body              string                     `json:"Body"`
		Attributes        map[string]string          `json:"Attributes,omitempty"`
		MD5OfAttributes   string                     `json:"MD5OfMessageAttributes,omitempty"`
		MessageAttributes map[string]queue.Attribute `json:"MessageAttributes,omitempty"`
	}
	receiveOut struct {
		Messages []message `json:"Messages,omitempty"`
	}
)

func (a *API) dispatch(r *http.Request, op string, req *request) (any, *wireError) {
	if !knownOp[op] {
		return nil, clientErr("InvalidAction", "InvalidAction", "The action "+op+" is not valid for this endpoint.")
	}
	if werr := a.authorize(r, op, req); werr != nil {
		return nil, werr
	}
	switch op {
	case "CreateQueue":
		return a.createQueue(r, req)
	case "GetQueueUrl":
		if req.QueueName == "" {
			return nil, errMissing("QueueName")
		}
		if _, err := a.q.Get(req.QueueName); err != nil {
			return nil, a.toWire(err)
		}
		return &queueURLOut{QueueURL: a.queueURL(req.QueueName)}, nil
	case "ListQueues":
		return a.listQueues(req)
	}
	name, werr := queueName(req)
	if werr != nil {
		return nil, werr
	}
	ctx := r.Context()
	var err error
	switch op {
	case "GetQueueAttributes":
		return a.getAttributes(r, name, req)
	case "SetQueueAttributes":
		err = a.q.SetAttributes(ctx, name, req.Attributes)
	case "DeleteQueue":
		err = a.q.Delete(ctx, name)
	case "PurgeQueue":
		err = a.q.Purge(ctx, name)
	case "SendMessage":
		return a.sendMessage(r, name, req)
	case "SendMessageBatch":
		return a.sendBatch(r, name, req)
	case "ReceiveMessage":
		return a.receive(r, name, req)
	case "DeleteMessage":
		if req.ReceiptHandle == "" {
			return nil, errMissing("ReceiptHandle")
		}
		err = a.q.DeleteMessage(ctx, name, req.ReceiptHandle)
	case "DeleteMessageBatch":
		return a.batchIDs(name, req, "DeleteMessageBatchResultEntry", func(e batchEntry) error {
			return a.q.DeleteMessage(ctx, name, e.ReceiptHandle)
		})
	case "ChangeMessageVisibility":
		if req.ReceiptHandle == "" {
			return nil, errMissing("ReceiptHandle")
		}
		if req.VisibilityTimeout == nil {
			return nil, errMissing("VisibilityTimeout")
		}
		err = a.q.ChangeVisibility(ctx, name, req.ReceiptHandle, *req.VisibilityTimeout)
	case "ChangeMessageVisibilityBatch":
		return a.batchIDs(name, req, "ChangeMessageVisibilityBatchResultEntry", func(e batchEntry) error {
			if e.VisibilityTimeout == nil {
				return errMissing("VisibilityTimeout")
			}
			return a.q.ChangeVisibility(ctx, name, e.ReceiptHandle, *e.VisibilityTimeout)
		})
	case "TagQueue":
		err = a.q.SetTags(ctx, name, req.Tags, nil)
	case "UntagQueue":
		err = a.q.SetTags(ctx, name, nil, req.TagKeys)
	case "ListQueueTags":
		q, gerr := a.q.Get(name)
		if gerr != nil {
			return nil, a.toWire(gerr)
		}
		return &tagsOut{Tags: q.Tags}, nil
	case "ListDeadLetterSourceQueues":
		return a.deadLetterSources(name)
	default:
		return nil, clientErr("InvalidAction", "InvalidAction", "The action "+op+" is not supported by Stratus.")
	}
	if err != nil {
		return nil, a.toWire(err)
	}
	return nil, nil
}

var knownOp = map[string]bool{
	"CreateQueue": true, "GetQueueUrl": true, "ListQueues": true,
	"GetQueueAttributes": true, "SetQueueAttributes": true, "DeleteQueue": true, "PurgeQueue": true,
	"SendMessage": true, "SendMessageBatch": true, "ReceiveMessage": true, "DeleteMessage": true,
	"DeleteMessageBatch": true, "ChangeMessageVisibility": true, "ChangeMessageVisibilityBatch": true,
	"TagQueue": true, "UntagQueue": true, "ListQueueTags": true, "ListDeadLetterSourceQueues": true,
}

func (a *API) createQueue(r *http.Request, req *request) (any, *wireError) {
	if req.QueueName == "" {
		return nil, errMissing("QueueName")
	}
	tags := req.CreateTags
	if tags == nil {
		tags = req.Tags
	}
	if _, err := a.q.Create(r.Context(), req.QueueName, req.Attributes, tags); err != nil {
		return nil, a.toWire(err)
	}
	return &queueURLOut{QueueURL: a.queueURL(req.QueueName)}, nil
}

func (a *API) listQueues(req *request) (any, *wireError) {
	names := a.q.List(req.QueueNamePrefix)
	if req.NextToken != "" {
		after, err := base64.RawURLEncoding.DecodeString(req.NextToken)
		if err != nil {
			return nil, clientErr("InvalidParameterValue", "InvalidParameterValue", "Invalid NextToken value.")
		}
		i := sort.SearchStrings(names, string(after))
		for i < len(names) && names[i] <= string(after) {
			i++
		}
		names = names[i:]
	}
	limit := 1000
	if req.MaxResults != nil {
		if *req.MaxResults < 1 || *req.MaxResults > 1000 {
			return nil, badValue("MaxResults", *req.MaxResults, "Must be between 1 and 1000, if provided.")
		}
		limit = *req.MaxResults
	}
	out := &listOut{}
	if len(names) > limit {
		names = names[:limit]
		if req.MaxResults != nil {
			out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(names[len(names)-1]))
		}
	}
	for _, n := range names {
		out.QueueURLs = append(out.QueueURLs, a.queueURL(n))
	}
	return out, nil
}

func (a *API) deadLetterSources(name string) (any, *wireError) {
	if _, err := a.q.Get(name); err != nil {
		return nil, a.toWire(err)
	}
	arn := queue.ARN(a.q.Region(), name)
	out := &dlSourcesOut{QueueURLs: []string{}}
	for _, n := range a.q.List("") {
		q, err := a.q.Get(n)
		if err == nil && q.Attrs.Redrive != nil && q.Attrs.Redrive.DeadLetterTargetArn == arn {
			out.QueueURLs = append(out.QueueURLs, a.queueURL(n))
		}
	}
	return out, nil
}

var queueAttrNames = map[string]bool{
	"All": true, "Policy": true, "VisibilityTimeout": true, "MaximumMessageSize": true,
	"MessageRetentionPeriod": true, "ApproximateNumberOfMessages": true,
	"ApproximateNumberOfMessagesNotVisible": true, "CreatedTimestamp": true,
	"LastModifiedTimestamp": true, "QueueArn": true, "ApproximateNumberOfMessagesDelayed": true,
	"DelaySeconds": true, "ReceiveMessageWaitTimeSeconds": true, "RedrivePolicy": true,
	"FifoQueue": true, "ContentBasedDeduplication": true, "KmsMasterKeyId": true,
	"KmsDataKeyReusePeriodSeconds": true, "DeduplicationScope": true, "FifoThroughputLimit": true,
	"RedriveAllowPolicy": true, "SqsManagedSseEnabled": true,
}

func (a *API) getAttributes(r *http.Request, name string, req *request) (any, *wireError) {
	q, err := a.q.Get(name)
	if err != nil {
		return nil, a.toWire(err)
	}
	want := map[string]bool{}
	for _, n := range req.AttributeNames {
		if !queueAttrNames[n] {
			return nil, clientErr("InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute "+n+".")
		}
		want[n] = true
	}
	if len(want) == 0 {
		return &attrsOut{}, nil
	}
	all := map[string]string{
		"VisibilityTimeout":             strconv.Itoa(q.Attrs.VisibilityTimeout),
		"MaximumMessageSize":            strconv.Itoa(q.Attrs.MaximumMessageSize),
		"MessageRetentionPeriod":        strconv.Itoa(q.Attrs.MessageRetentionPeriod),
		"DelaySeconds":                  strconv.Itoa(q.Attrs.DelaySeconds),
		"ReceiveMessageWaitTimeSeconds": strconv.Itoa(q.Attrs.ReceiveMessageWaitTimeSeconds),
		"CreatedTimestamp":              strconv.FormatInt(q.Created, 10),
		"LastModifiedTimestamp":         strconv.FormatInt(q.Modified, 10),
		"QueueArn":                      queue.ARN(a.q.Region(), name),
		"SqsManagedSseEnabled":          "false",
	}
	for k, v := range q.Attrs.Opaque {
		all[k] = v
	}
	if rp := q.Attrs.Redrive; rp != nil {
		b, _ := json.Marshal(rp)
		all["RedrivePolicy"] = string(b)
	}
	if want["All"] || want["ApproximateNumberOfMessages"] || want["ApproximateNumberOfMessagesNotVisible"] || want["ApproximateNumberOfMessagesDelayed"] {
		st, err := a.q.Stats(r.Context(), name)
		if err != nil {
			return nil, a.toWire(err)
		}
		all["ApproximateNumberOfMessages"] = strconv.FormatInt(st.Visible, 10)
		all["ApproximateNumberOfMessagesNotVisible"] = strconv.FormatInt(st.InFlight, 10)
		all["ApproximateNumberOfMessagesDelayed"] = strconv.FormatInt(st.Delayed, 10)
	}
	out := &attrsOut{Attributes: map[string]string{}}
	for k, v := range all {
		if want["All"] || want[k] {
			out.Attributes[k] = v
		}
	}
	return out, nil
}

func (a *API) sendMessage(r *http.Request, name string, req *request) (any, *wireError) {
	if req.MessageBody == nil {
		return nil, errMissing("MessageBody")
	}
	res, err := a.q.Send(r.Context(), name, []queue.SendEntry{{
		Body: *req.MessageBody, DelaySeconds: req.DelaySeconds,
		Attributes: req.MessageAttributes, System: req.MessageSystemAttributes,
	}})
	if err != nil {
		return nil, a.toWire(err)
	}
	if res[0].Err != nil {
		return nil, a.toWire(res[0].Err)
	}
	return &sendOut{MessageID: res[0].MessageID, MD5OfBody: res[0].MD5OfBody,
		MD5OfAttributes: res[0].MD5OfAttributes, MD5OfSystemAttrs: res[0].MD5OfSystemAttrs}, nil
}

var entryIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func checkBatch(entries []batchEntry) *wireError {
	if len(entries) == 0 {
		return errEmptyBatch
	}
	if len(entries) > queue.MaxBatchEntries {
		return errTooMany
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if !entryIDRE.MatchString(e.ID) {
			return clientErr("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
		}
		if seen[e.ID] {
			return errDistinct
		}
		seen[e.ID] = true
	}
	return nil
}

func (a *API) sendBatch(r *http.Request, name string, req *request) (any, *wireError) {
	if werr := checkBatch(req.Entries); werr != nil {
		return nil, werr
	}
	q, err := a.q.Get(name)
	if err != nil {
		return nil, a.toWire(err)
	}
	entries := make([]queue.SendEntry, len(req.Entries))
	total := 0
	for i, e := range req.Entries {
		body := ""
		if e.MessageBody != nil {
			body = *e.MessageBody
		}
		total += len(body)
		entries[i] = queue.SendEntry{ID: e.ID, Body: body, DelaySeconds: e.DelaySeconds, Attributes: e.MessageAttributes, System: e.MessageSystemAttributes}
	}
	if total > q.Attrs.MaximumMessageSize {
		return nil, clientErr("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", "Batch requests cannot be longer than "+strconv.Itoa(q.Attrs.MaximumMessageSize)+" bytes.")
	}
	res, err := a.q.Send(r.Context(), name, entries)
	if err != nil {
		return nil, a.toWire(err)
	}
	out := &sendBatchOut{Successful: []sendOut{}, Failed: []batchError{}}
	for _, s := range res {
		if s.Err != nil {
			out.Failed = append(out.Failed, a.entryError(s.ID, s.Err))
			continue
		}
		out.Successful = append(out.Successful, sendOut{ID: s.ID, MessageID: s.MessageID, MD5OfBody: s.MD5OfBody,
			MD5OfAttributes: s.MD5OfAttributes, MD5OfSystemAttrs: s.MD5OfSystemAttrs})
	}
	return out, nil
}

func (a *API) entryError(id string, err error) batchError {
	we := a.toWire(err)
	return batchError{ID: id, SenderFault: !we.Receiver, Code: we.Code, Message: we.Message}
}

func (a *API) batchIDs(name string, req *request, kind string, do func(batchEntry) error) (any, *wireError) {
	if werr := checkBatch(req.Entries); werr != nil {
		return nil, werr
	}
	if _, err := a.q.Get(name); err != nil {
		return nil, a.toWire(err)
	}
	out := &idsOut{Successful: []idEntry{}, Failed: []batchError{}, kind: kind}
	for _, e := range req.Entries {
		var err error
		if e.ReceiptHandle == "" {
			err = errMissing("ReceiptHandle")
		} else {
			err = do(e)
		}
		if err != nil {
			out.Failed = append(out.Failed, a.entryError(e.ID, err))
			continue
		}
		out.Successful = append(out.Successful, idEntry{ID: e.ID})
	}
	return out, nil
}

func (a *API) receive(r *http.Request, name string, req *request) (any, *wireError) {
	q, err := a.q.Get(name)
	if err != nil {
		return nil, a.toWire(err)
	}
	max := intOr(req.MaxNumberOfMessages, 1)
	if max < 1 || max > queue.MaxReceive {
		return nil, badValue("MaxNumberOfMessages", max, "Must be between 1 and 10, if provided.")
	}
	wait := intOr(req.WaitTimeSeconds, q.Attrs.ReceiveMessageWaitTimeSeconds)
	if wait < 0 || wait > queue.MaxWaitSeconds {
		return nil, badValue("WaitTimeSeconds", wait, "Must be >= 0 and <= 20, if provided.")
	}
	if v := req.VisibilityTimeout; v != nil && (*v < 0 || *v > queue.MaxVisibility) {
		return nil, badValue("VisibilityTimeout", *v, "Must be between 0 and 43200, if provided.")
	}
	msgs, err := a.q.Receive(r.Context(), name, queue.ReceiveOptions{Max: max, Wait: time.Duration(wait) * time.Second, Visibility: req.VisibilityTimeout})
	if err != nil && len(msgs) == 0 {
		return nil, a.toWire(err)
	}
	sysNames := append(append([]string{}, req.AttributeNames...), req.MessageSystemAttributeNames...)
	out := &receiveOut{}
	for _, m := range msgs {
		out.Messages = append(out.Messages, shape(m, sysNames, req.MessageAttributeNames))
	}
	return out, nil
}

// shape keeps the attributes a receive asked for.
func shape(m queue.Message, sysNames, attrNames []string) message {
	out := message{MessageID: m.MessageID, ReceiptHandle: m.ReceiptHandle, MD5OfBody: m.MD5OfBody, Body: m.Body}
	for _, n := range sysNames {
		for k, v := range m.Attributes {
			if n == "All" || n == k {
				if out.Attributes == nil {
					out.Attributes = map[string]string{}
				}
				out.Attributes[k] = v
			}
		}
		if th, ok := m.SystemAttributes["AWSTraceHeader"]; ok && th.StringValue != nil && (n == "All" || n == "AWSTraceHeader") {
			if out.Attributes == nil {
				out.Attributes = map[string]string{}
			}
			out.Attributes["AWSTraceHeader"] = *th.StringValue
		}
	}
	for k, v := range m.MessageAttributes {
		for _, n := range attrNames {
			prefix, wild := strings.CutSuffix(n, ".*")
			if n == "All" || n == ".*" || n == k || (wild && strings.HasPrefix(k, prefix+".")) {
				if out.MessageAttributes == nil {
					out.MessageAttributes = map[string]queue.Attribute{}
				}
				out.MessageAttributes[k] = v
				break
			}
		}
	}
	out.MD5OfAttributes = queue.AttributesMD5(out.MessageAttributes)
	return out
}

// iamAction is the IAM action of an operation: batches are their single
// operation's.
func iamAction(op string) string {
	return "sqs:" + strings.TrimSuffix(op, "Batch")
}

// authorize asks whether the caller may perform op on the queue the
// request names (a queue's ARN; "*" for ListQueues); without an
// authorizer, nothing is allowed.
func (a *API) authorize(r *http.Request, op string, req *request) *wireError {
	resource := "*"
	switch op {
	case "ListQueues":
	case "CreateQueue", "GetQueueUrl":
		if req.QueueName != "" {
			resource = queue.ARN(a.q.Region(), req.QueueName)
		}
	default:
		if name, werr := queueName(req); werr == nil {
			resource = queue.ARN(a.q.Region(), name)
		}
	}
	action := iamAction(op)
	if err := auth.Ask(r.Context(), a.auth, action, resource); err != nil {
		return a.toWire(err)
	}
	return nil
}
