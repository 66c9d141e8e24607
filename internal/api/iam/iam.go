// Package iam speaks the query protocols of IAM (users, access keys,
// roles, inline and managed policies) and STS (GetCallerIdentity,
// AssumeRole), as `aws iam`, `aws sts` and the SDKs send them: form-encoded
// Action=... with XML answers. Both are the identity service's wire, so
// they share one package; the decisions are package auth's.
package iam

import (
	"encoding/xml"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/store"
)

const (
	iamNS = "https://iam.amazonaws.com/doc/2010-05-08/"
	stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"
	// Versions of the two query APIs, as clients send them.
	IAMVersion = "2010-05-08"
	STSVersion = "2011-06-15"
)

// API serves IAM and STS.
type API struct {
	iam *auth.IAM
	log *slog.Logger
}

// New returns the API.
func New(iam *auth.IAM, log *slog.Logger) *API { return &API{iam: iam, log: log} }

// wireError is an IAM or STS error document.
type wireError struct {
	Status  int
	Code    string
	Message string
}

func (e *wireError) Error() string { return e.Code + ": " + e.Message }

func invalid(msg string) error { return &wireError{400, "ValidationError", msg} }

// toWire maps every error below to its code; the one place that does.
func (a *API) toWire(err error) *wireError {
	var we *wireError
	if errors.As(err, &we) {
		return we
	}
	msg := err.Error()
	if i := strings.Index(msg, ": "); i >= 0 && !errors.As(err, new(*auth.Denied)) {
		msg = msg[i+2:] // the kind's own words are not the caller's
	}
	var denied *auth.Denied
	switch {
	case errors.As(err, &denied):
		return &wireError{403, "AccessDenied", denied.Error()}
	case errors.Is(err, auth.ErrNoSuchEntity):
		return &wireError{404, "NoSuchEntity", msg}
	case errors.Is(err, auth.ErrEntityExists):
		return &wireError{409, "EntityAlreadyExists", msg}
	case errors.Is(err, auth.ErrDeleteConflict):
		return &wireError{409, "DeleteConflict", msg}
	case errors.Is(err, auth.ErrLimitExceeded):
		return &wireError{409, "LimitExceeded", msg}
	case errors.Is(err, auth.ErrMalformedPolicy):
		return &wireError{400, "MalformedPolicyDocument", msg}
	case errors.Is(err, auth.ErrInvalidInput):
		return &wireError{400, "InvalidInput", msg}
	case store.Unavailable(err):
		return &wireError{503, "ServiceFailure", store.Explain(err)}
	}
	a.log.Error("iam: internal error", "err", err)
	return &wireError{500, "ServiceFailure", "internal error: " + err.Error()}
}

// ServeHTTP answers one request whose form (body, then query) is parsed.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request, form url.Values, sts bool) {
	rid := uuid.NewString()
	w.Header().Set("X-Amzn-RequestId", rid)
	op := form.Get("Action")
	ns := iamNS
	if sts {
		ns = stsNS
	}
	result, err := a.dispatch(r, op, form, sts)
	if err != nil {
		e := a.toWire(err)
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(e.Status)
		b, _ := xml.Marshal(errorResponse{XMLNS: ns, Error: errorBody{Type: "Sender", Code: e.Code, Message: e.Message}, RequestID: rid})
		_, _ = w.Write(b)
		return
	}
	type response struct {
		XMLName  xml.Name
		XMLNS    string `xml:"xmlns,attr"`
		Result   any    `xml:",omitempty"`
		Metadata struct {
			RequestID string `xml:"RequestId"`
		} `xml:"ResponseMetadata"`
	}
	resp := response{XMLName: xml.Name{Local: op + "Response"}, XMLNS: ns}
	if result != nil {
		resp.Result = wrapped{name: op + "Result", v: result}
	}
	resp.Metadata.RequestID = rid
	b, err := xml.Marshal(resp)
	if err != nil {
		a.log.Error("iam: encode", "err", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+len(xml.Header)))
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

// wrapped encodes v under the element name.
type wrapped struct {
	name string
	v    any
}

func (w wrapped) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	return e.EncodeElement(w.v, xml.StartElement{Name: xml.Name{Local: w.name}})
}

type errorResponse struct {
	XMLName   xml.Name  `xml:"ErrorResponse"`
	XMLNS     string    `xml:"xmlns,attr"`
	Error     errorBody `xml:"Error"`
	RequestID string    `xml:"RequestId"`
}

type errorBody struct {
	Type    string
	Code    string
	Message string
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// encodeDoc is how IAM returns policy documents: percent-encoded JSON
// (botocore and the CLI decode it; other SDKs leave it to the caller).
func encodeDoc(doc string) string { return url.PathEscape(doc) }
