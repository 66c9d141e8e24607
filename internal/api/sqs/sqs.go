// Package sqs speaks Amazon SQS's two wire protocols on the API listener:
// JSON (X-Amz-Target: AmazonSQS.*, current SDKs) and query (form-encoded
// Action=..., XML answers; older SDKs and CLIs). Both decode into one
// request shape and share the operations; errors map to SQS's codes here.
package sqs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/queue"
	"github.com/stratus-faas/stratus/internal/recursion"
	"github.com/stratus-faas/stratus/internal/store"
)

// maxRequest bounds a request body: ten messages of 256 KB with attributes,
// form-encoded, fit.
const maxRequest = 8 << 20

// API serves SQS.
type API struct {
	auth     auth.Authorizer
	q        *queue.Manager
	log      *slog.Logger
	endpoint string // base of queue URLs
}

// New returns the SQS API; endpoint is the API listener's base URL, and
// authz decides what each caller may do (nil allows nothing).
func New(q *queue.Manager, log *slog.Logger, endpoint string, authz auth.Authorizer) *API {
	return &API{q: q, log: log, endpoint: strings.TrimSuffix(endpoint, "/"), auth: authz}
}

// Register mounts SQS on queue URLs. The root path, which SQS's query
// protocol shares with IAM's and STS's, is the server's to route.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /"+queue.Account+"/{queue}", a)
	mux.Handle("GET /"+queue.Account+"/{queue}", a)
}

// request is every operation's input, in the JSON protocol's names.
type request struct {
	QueueName                   string                     `json:"QueueName"`
	QueueURL                    string                     `json:"QueueUrl"`
	Attributes                  map[string]string          `json:"Attributes"`
	Tags                        map[string]string          `json:"Tags"`
	CreateTags                  map[string]string          `json:"tags"`
	TagKeys                     []string                   `json:"TagKeys"`
	AttributeNames              []string                   `json:"AttributeNames"`
	MessageSystemAttributeNames []string                   `json:"MessageSystemAttributeNames"`
	MessageAttributeNames       []string                   `json:"MessageAttributeNames"`
	QueueNamePrefix             string                     `json:"QueueNamePrefix"`
	MaxResults                  *int                       `json:"MaxResults"`
	NextToken                   string                     `json:"NextToken"`
	MessageBody                 *string                    `json:"MessageBody"`
	DelaySeconds                *int                       `json:"DelaySeconds"`
	MessageAttributes           map[string]queue.Attribute `json:"MessageAttributes"`
	MessageSystemAttributes     map[string]queue.Attribute `json:"MessageSystemAttributes"`
	MaxNumberOfMessages         *int                       `json:"MaxNumberOfMessages"`
	VisibilityTimeout           *int                       `json:"VisibilityTimeout"`
	WaitTimeSeconds             *int                       `json:"WaitTimeSeconds"`
	ReceiptHandle               string                     `json:"ReceiptHandle"`
	Entries                     []batchEntry               `json:"Entries"`
	MessageGroupID              string                     `json:"MessageGroupId"`
}

type batchEntry struct {
	ID                      string                     `json:"Id"`
	MessageBody             *string                    `json:"MessageBody"`
	DelaySeconds            *int                       `json:"DelaySeconds"`
	MessageAttributes       map[string]queue.Attribute `json:"MessageAttributes"`
	MessageSystemAttributes map[string]queue.Attribute `json:"MessageSystemAttributes"`
	ReceiptHandle           string                     `json:"ReceiptHandle"`
	VisibilityTimeout       *int                       `json:"VisibilityTimeout"`
	MessageGroupID          string                     `json:"MessageGroupId"`
}

// wireError is an SQS error: the JSON protocol's type, the query
// protocol's code (also sent to JSON clients in X-Amzn-Query-Error), the
// status, and whose fault it is.
type wireError struct {
	Status   int
	Type     string
	Code     string
	Message  string
	Receiver bool
}

func (e *wireError) Error() string { return e.Code + ": " + e.Message }

func clientErr(typ, code, msg string) *wireError {
	return &wireError{Status: 400, Type: typ, Code: code, Message: msg}
}

var (
	errMissing = func(name string) *wireError {
		return clientErr("MissingParameter", "MissingParameter", "The request must contain the parameter "+name+".")
	}
	errEmptyBatch = clientErr("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one BatchRequestEntry in the request.")
	errTooMany    = clientErr("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "Maximum number of entries per request are 10.")
	errDistinct   = clientErr("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Two or more batch entries in the request have the same Id.")
)

// toWire maps every error of the layers below to SQS's error. It is the
// one place that does.
func (a *API) toWire(err error) *wireError {
	var we *wireError
	if errors.As(err, &we) {
		return we
	}
	if d, ok := errors.AsType[*auth.Denied](err); ok {
		return &wireError{Status: 403, Type: "AccessDeniedException", Code: "AccessDenied", Message: d.Error()}
	}
	msg := function.Message(err)
	switch {
	case errors.Is(err, queue.ErrNoQueue):
		return clientErr("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", msg)
	case errors.Is(err, queue.ErrExists):
		return clientErr("QueueNameExists", "QueueAlreadyExists", msg)
	case errors.Is(err, queue.ErrInvalidAttrName):
		return clientErr("InvalidAttributeName", "InvalidAttributeName", msg)
	case errors.Is(err, queue.ErrInvalidAttrValue):
		return clientErr("InvalidAttributeValue", "InvalidAttributeValue", msg)
	case errors.Is(err, queue.ErrInvalidParameter):
		return clientErr("InvalidParameterValue", "InvalidParameterValue", msg)
	case errors.Is(err, queue.ErrInvalidContents):
		return clientErr("InvalidMessageContents", "InvalidMessageContents", msg)
	case errors.Is(err, queue.ErrBadHandle):
		return clientErr("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", msg)
	case errors.Is(err, queue.ErrNotInflight):
		return clientErr("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", msg)
	case errors.Is(err, queue.ErrUnsupported):
		return clientErr("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", msg)
	}
	if store.Unavailable(err) {
		return &wireError{Status: 503, Type: "ServiceUnavailable", Code: "ServiceUnavailable", Receiver: true,
			Message: store.Explain(err)}
	}
	a.log.Error("sqs: internal error", "err", err)
	return &wireError{Status: 500, Type: "InternalError", Code: "InternalError", Message: "internal error: " + err.Error(), Receiver: true}
}

// ServeHTTP decodes either protocol, runs the operation and answers in
// the protocol it was asked in.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := uuid.NewString()
	w.Header().Set("X-Amzn-RequestId", rid)
	r = r.WithContext(recursion.WithTrace(r.Context(), r.Header.Get("X-Amzn-Trace-Id")))
	body, err := readBody(w, r)
	if err != nil {
		writeQueryError(w, rid, clientErr("RequestTooLong", "RequestTooLong", "The request is too large."))
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		op, ok := strings.CutPrefix(target, "AmazonSQS.")
		if !ok {
			writeJSONError(w, clientErr("UnknownOperationException", "InvalidAction", "Unknown target "+target))
			return
		}
		var req request
		if len(body) > 0 {
			if err := json.Unmarshal(body, &req); err != nil {
				writeJSONError(w, clientErr("SerializationException", "InvalidParameterValue", "Malformed request body: "+err.Error()))
				return
			}
		}
		a.pathQueue(r, &req)
		out, werr := a.dispatch(r, op, &req)
		if werr != nil {
			writeJSONError(w, werr)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if out == nil {
			out = struct{}{}
		}
		_ = json.NewEncoder(w).Encode(out)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeQueryError(w, rid, clientErr("MalformedQueryString", "MalformedQueryString", err.Error()))
		return
	}
	for k, v := range r.URL.Query() {
		if _, ok := form[k]; !ok {
			form[k] = v
		}
	}
	op := form.Get("Action")
	if op == "" {
		writeQueryError(w, rid, clientErr("MissingAction", "MissingAction", "No Action parameter in the request (use the JSON protocol's X-Amz-Target or the query protocol's Action)."))
		return
	}
	req, werr := fromQuery(form)
	if werr != nil {
		writeQueryError(w, rid, werr)
		return
	}
	a.pathQueue(r, req)
	out, werr := a.dispatch(r, op, req)
	if werr != nil {
		writeQueryError(w, rid, werr)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(toXML(op, out, rid))
}

// pathQueue takes the queue from the URL path when the body names none
// (query clients post to the queue URL).
func (a *API) pathQueue(r *http.Request, req *request) {
	if req.QueueURL == "" {
		if name := r.PathValue("queue"); name != "" {
			req.QueueURL = a.endpoint + "/" + queue.Account + "/" + name
		}
	}
}

// readBody takes a body already read whole (to check its signature) as
// it is, and reads any other up to maxRequest.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if b, ok := r.Body.(interface{ Bytes() []byte }); ok {
		if len(b.Bytes()) > maxRequest {
			return nil, errors.New("request too large")
		}
		return b.Bytes(), nil
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
}

// queueName returns the queue a request's QueueUrl names. Any host is
// accepted: clients may reach Stratus by another name than it gave.
func queueName(req *request) (string, *wireError) {
	if req.QueueURL == "" {
		return "", errMissing("QueueUrl")
	}
	u := strings.TrimSuffix(req.QueueURL, "/")
	i := strings.LastIndexByte(u, '/')
	name := u[i+1:]
	if i < 0 || name == "" {
		return "", clientErr("InvalidAddress", "InvalidAddress", "The address "+req.QueueURL+" is not valid for this endpoint.")
	}
	return name, nil
}

func (a *API) queueURL(name string) string {
	return a.endpoint + "/" + queue.Account + "/" + name
}

func writeJSONError(w http.ResponseWriter, e *wireError) {
	fault := "Sender"
	if e.Receiver {
		fault = "Receiver"
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-Query-Error", e.Code+";"+fault)
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(map[string]string{"__type": "com.amazonaws.sqs#" + e.Type, "message": e.Message})
	_, _ = w.Write(b)
}

func writeQueryError(w http.ResponseWriter, rid string, e *wireError) {
	fault := "Sender"
	if e.Receiver {
		fault = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Status)
	var b xmlBuf
	b.open("ErrorResponse")
	b.open("Error")
	b.elem("Type", fault)
	b.elem("Code", e.Code)
	b.elem("Message", e.Message)
	b.raw("<Detail/>")
	b.close("Error")
	b.elem("RequestId", rid)
	b.close("ErrorResponse")
	_, _ = w.Write(b.Bytes())
}

func intOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

func badValue(name string, v int, reason string) *wireError {
	return clientErr("InvalidParameterValue", "InvalidParameterValue", fmt.Sprintf("Value %s for parameter %s is invalid. Reason: %s", strconv.Itoa(v), name, reason))
}
