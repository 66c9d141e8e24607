package lambda

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/esm"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/store"
)

// awsError is an error in the shape Lambda's clients decode: the type in
// X-Amzn-ErrorType and a JSON body with Type and the message.
type awsError struct {
	Status     int
	Code       string
	Message    string
	Reason     string // TooManyRequestsException only
	RetryAfter int    // seconds; TooManyRequestsException only
}

// toAWS maps every error of the layers below to its wire form. ref is the
// function the request named, for messages that quote its ARN.
func (a *API) toAWS(err error, ref string) awsError {
	var thr *invoke.ThrottleError
	var denied *auth.Denied
	switch {
	case errors.As(err, &denied):
		return awsError{Status: 403, Code: "AccessDeniedException", Message: denied.Error()}
	case errors.As(err, &thr):
		return awsError{Status: 429, Code: "TooManyRequestsException", Message: thr.Error(), Reason: thr.Reason, RetryAfter: int(thr.RetryAfter.Seconds() + 0.5)}
	case errors.Is(err, function.ErrInvalid), errors.Is(err, invoke.ErrUnsupported):
		return awsError{Status: 400, Code: "InvalidParameterValueException", Message: detail(err)}
	case errors.Is(err, function.ErrTooLarge):
		return awsError{Status: 413, Code: "RequestTooLargeException", Message: detail(err)}
	case errors.Is(err, invoke.ErrInvalidContent), errors.Is(err, errBadBody):
		return awsError{Status: 400, Code: "InvalidRequestContentException", Message: detail(err)}
	case errors.Is(err, registry.ErrAliasNotFound):
		return awsError{Status: 404, Code: "ResourceNotFoundException", Message: "Alias not found: " + detail(err)}
	case errors.Is(err, registry.ErrAliasExists):
		return awsError{Status: 409, Code: "ResourceConflictException", Message: "Alias already exists: " + detail(err)}
	case errors.Is(err, registry.ErrVersionInUse):
		return awsError{Status: 409, Code: "ResourceConflictException", Message: detail(err)}
	case errors.Is(err, registry.ErrURLNotFound):
		return awsError{Status: 404, Code: "ResourceNotFoundException", Message: "The resource you requested does not exist."}
	case errors.Is(err, registry.ErrURLExists):
		return awsError{Status: 409, Code: "ResourceConflictException", Message: "Failed to create function url config for [functionArn = " + a.arnOf(ref) + "]. Error message:  FunctionUrlConfig exists for this Lambda function"}
	case errors.Is(err, registry.ErrNoEventConfig):
		return awsError{Status: 404, Code: "ResourceNotFoundException", Message: "The function " + a.arnOf(ref) + " doesn't have an EventInvokeConfig"}
	case errors.Is(err, registry.ErrNoProvisioned):
		return awsError{Status: 404, Code: "ProvisionedConcurrencyConfigNotFoundException", Message: "No Provisioned Concurrency Config found for this function"}
	case errors.Is(err, registry.ErrNoPolicy), errors.Is(err, registry.ErrNoStatement):
		return awsError{Status: 404, Code: "ResourceNotFoundException", Message: detail(err)}
	case errors.Is(err, registry.ErrStatementSid):
		return awsError{Status: 409, Code: "ResourceConflictException", Message: detail(err)}
	case errors.Is(err, esm.ErrNotFound):
		return awsError{Status: 404, Code: "ResourceNotFoundException", Message: "The resource you requested does not exist."}
	case errors.Is(err, esm.ErrExists):
		return awsError{Status: 409, Code: "ResourceConflictException", Message: detail(err)}
	case errors.Is(err, registry.ErrLayerNotFound):
		return awsError{Status: 404, Code: "ResourceNotFoundException", Message: "The resource you requested does not exist."}
	case errors.Is(err, registry.ErrNotFound):
		return awsError{Status: 404, Code: "ResourceNotFoundException", Message: "Function not found: " + a.arnOf(ref)}
	case errors.Is(err, registry.ErrExists):
		return awsError{Status: 409, Code: "ResourceConflictException", Message: "Function already exist: " + ref}
	case errors.Is(err, registry.ErrConflict):
		return awsError{Status: 409, Code: "ResourceConflictException", Message: "The operation cannot be performed at this time. An update is in progress for resource: " + a.arnOf(ref)}
	case errors.Is(err, registry.ErrPrecondition):
		return awsError{Status: 412, Code: "PreconditionFailedException", Message: "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id"}
	case errors.Is(err, invoke.ErrRecursiveLoop):
		return awsError{Status: 400, Code: "RecursiveInvocationException", Message: "The invocation was stopped: the event behind it has run " + a.arnOf(ref) + " in a recursive loop too many times. PutFunctionRecursionConfig with RecursiveLoop Allow lets such loops go on."}
	case errors.Is(err, invoke.ErrShuttingDown):
		return awsError{Status: 500, Code: "ServiceException", Message: "Stratus is shutting down; retry on another node or after restart"}
	case store.Unavailable(err):
		return awsError{Status: 503, Code: "ServiceException", Message: store.Explain(err)}
	}
	a.log.Error("internal error", "function", ref, "err", err)
	return awsError{Status: 500, Code: "ServiceException", Message: "internal error: " + err.Error()}
}

// authorize asks the authorizer, with the resource policy of the
// function (version, alias) the request names; without an authorizer,
// nothing is allowed.
func (a *API) authorize(r *http.Request, action, resource string, conds ...auth.Cond) error {
	if a.opts.Auth == nil {
		return &auth.Denied{Action: action, Resource: resource}
	}
	var pol *auth.Policy
	if ref := r.PathValue("name"); ref != "" && a.reg != nil {
		if name, q, err := function.ParseRef(ref); err == nil {
			if al := r.PathValue("alias"); al != "" {
				q = al
			} else if q == "" {
				q = r.URL.Query().Get("Qualifier")
			}
			pol = a.reg.CompiledPolicy(name, q)
		}
	}
	return a.opts.Auth.AuthorizeWith(r.Context(), pol, action, resource, conds...)
}

// resource is the ARN of what the request's path names: a function (with
// the qualifier of the path or the query), a mapping, a tagged resource,
// or "*" for operations on no one resource.
func (a *API) resource(r *http.Request) string {
	if arn := r.PathValue("arn"); arn != "" {
		return arn
	}
	if id := r.PathValue("uuid"); id != "" {
		return "arn:aws:lambda:" + a.opts.Region + ":" + function.AccountID + ":event-source-mapping:" + id
	}
	ref := r.PathValue("name")
	if ref == "" {
		return "*"
	}
	name, q, err := function.ParseRef(ref)
	if err != nil {
		return ref
	}
	if al := r.PathValue("alias"); al != "" {
		q = al
	} else if q == "" {
		q = r.URL.Query().Get("Qualifier")
	}
	return function.ARN(a.opts.Region, name, q)
}

// detail is the message for the caller.
func detail(err error) string {
	if errors.Is(err, invoke.ErrInvalidContent) {
		return "Could not parse request body into json: Could not parse payload into json"
	}
	return function.Message(err)
}

func (a *API) arnOf(ref string) string {
	name, q, err := function.ParseRef(ref)
	if err != nil {
		return ref
	}
	return function.ARN(a.opts.Region, name, q)
}

// refError names the function a failed request was about, for messages
// that quote its ARN.
type refError struct {
	ref string
	err error
}

func (e *refError) Error() string { return e.err.Error() }
func (e *refError) Unwrap() error { return e.err }

// at ties err to the function ref names; nil stays nil.
func (a *API) at(ref string, err error) error {
	if err == nil {
		return nil
	}
	return &refError{ref: ref, err: err}
}

// h adapts a handler that returns its error, so that errors reach the
// wire in one place: mapped by toAWS, written by writeAWSError. Before
// the handler runs, the caller must be allowed the operation's action
// (lambda:ACTION) on the resource the path names.
func (a *API) h(action string, fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	action = "lambda:" + action
	return func(w http.ResponseWriter, r *http.Request) {
		err := a.authorize(r, action, a.resource(r))
		if err == nil {
			err = fn(w, r)
		}
		if err == nil {
			return
		}
		ref := r.PathValue("name")
		if re, ok := errors.AsType[*refError](err); ok {
			ref = re.ref
		}
		writeAWSError(w, a.toAWS(err, ref))
	}
}

func writeAWSError(w http.ResponseWriter, e awsError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Amzn-ErrorType", e.Code)
	body := map[string]string{"Type": "User", "message": e.Message}
	if e.Status >= 500 {
		body["Type"] = "Service"
	}
	// ResourceNotFoundException and ServiceException spell it Message.
	if e.Code == "ResourceNotFoundException" || e.Code == "ServiceException" {
		delete(body, "message")
		body["Message"] = e.Message
	}
	if e.Reason != "" {
		body["Reason"] = e.Reason
	}
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(body)
}
