package s3

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/objects"
	"github.com/stratus-faas/stratus/internal/store"
)

// s3Error is an error as S3 puts it on the wire.
type s3Error struct {
	Status  int
	Code    string
	Message string
	// Resource names the bucket or key the error is about.
	Resource string
}

func (e *s3Error) Error() string { return e.Code + ": " + e.Message }

func errInvalidArgument(msg string) *s3Error {
	return &s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: msg}
}

func errInvalidRequest(msg string) *s3Error {
	return &s3Error{Status: http.StatusBadRequest, Code: "InvalidRequest", Message: msg}
}

func errBadDigest(msg string) *s3Error {
	return &s3Error{Status: http.StatusBadRequest, Code: "BadDigest", Message: msg}
}

func errMalformedXML() *s3Error {
	return &s3Error{Status: http.StatusBadRequest, Code: "MalformedXML", Message: "The XML you provided was not well-formed or did not validate against our published schema."}
}

var errNotImplemented = &s3Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Message: "A header or query you provided implies functionality that is not implemented."}

// wire maps any error to S3's shape: the one place this API does.
func wire(err error) *s3Error {
	var e *s3Error
	if errors.As(err, &e) {
		return e
	}
	var denied *auth.Denied
	switch {
	case errors.As(err, &denied):
		return &s3Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: err.Error()}
	case errors.Is(err, objects.ErrNoSuchBucket):
		return &s3Error{Status: http.StatusNotFound, Code: "NoSuchBucket", Message: "The specified bucket does not exist"}
	case errors.Is(err, objects.ErrNoSuchKey):
		return &s3Error{Status: http.StatusNotFound, Code: "NoSuchKey", Message: "The specified key does not exist."}
	case errors.Is(err, objects.ErrNoSuchUpload):
		return &s3Error{Status: http.StatusNotFound, Code: "NoSuchUpload", Message: "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."}
	case errors.Is(err, objects.ErrBucketOwned):
		return &s3Error{Status: http.StatusConflict, Code: "BucketAlreadyOwnedByYou", Message: "Your previous request to create the named bucket succeeded and you already own it."}
	case errors.Is(err, objects.ErrBucketNotEmpty):
		return &s3Error{Status: http.StatusConflict, Code: "BucketNotEmpty", Message: "The bucket you tried to delete is not empty"}
	case errors.Is(err, objects.ErrPrecondition):
		return &s3Error{Status: http.StatusPreconditionFailed, Code: "PreconditionFailed", Message: "At least one of the pre-conditions you specified did not hold"}
	case errors.Is(err, objects.ErrConflict):
		return &s3Error{Status: http.StatusConflict, Code: "ConditionalRequestConflict", Message: "A conflicting operation occurred. If using PutObject you can retry the request."}
	case errors.Is(err, objects.ErrInvalidPart):
		return &s3Error{Status: http.StatusBadRequest, Code: "InvalidPart", Message: err.Error()}
	case errors.Is(err, objects.ErrInvalidPartOrder):
		return &s3Error{Status: http.StatusBadRequest, Code: "InvalidPartOrder", Message: "The list of parts was not in ascending order. Parts must be ordered by part number."}
	case errors.Is(err, objects.ErrEntityTooSmall):
		return &s3Error{Status: http.StatusBadRequest, Code: "EntityTooSmall", Message: "Your proposed upload is smaller than the minimum allowed object size."}
	case errors.Is(err, objects.ErrNoSpace), store.Unavailable(err):
		return &s3Error{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable", Message: "The server cannot store data now: " + err.Error()}
	case errors.Is(err, context.Canceled):
		return &s3Error{Status: http.StatusBadRequest, Code: "RequestTimeout", Message: "Your socket connection to the server was not read from or written to within the timeout period."}
	case errors.Is(err, errFraming), errors.Is(err, errTrailer):
		return &s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: "The request body is not valid aws-chunked framing: " + err.Error()}
	case errors.Is(err, errOversized):
		return &s3Error{Status: http.StatusBadRequest, Code: "InvalidChunkSizeError", Message: "Only the last chunk is allowed to have a size less than 8192 bytes, and no chunk may exceed 16 MiB."}
	case errors.Is(err, errChunkSig):
		return &s3Error{Status: http.StatusForbidden, Code: "SignatureDoesNotMatch", Message: "The request signature we calculated does not match the signature you provided: " + err.Error()}
	}
	return &s3Error{Status: http.StatusInternalServerError, Code: "InternalError", Message: "We encountered an internal error. Please try again: " + err.Error()}
}

type errorDoc struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

// writeError answers err in S3's XML shape (headers only for HEAD).
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := wire(err)
	h := w.Header()
	id := h.Get("X-Amzn-RequestId")
	h.Set("X-Amz-Request-Id", id)
	if e.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	h.Set("Content-Type", "application/xml")
	w.WriteHeader(e.Status)
	res := e.Resource
	if res == "" {
		res = r.URL.Path
	}
	b, _ := xml.Marshal(errorDoc{Code: e.Code, Message: e.Message, Resource: res, RequestID: id})
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

// RefusalXML is an error before the API saw the request (authentication,
// throttling) in S3's shape, for the server's one refusal writer.
func RefusalXML(code, msg, requestID string) []byte {
	b, _ := xml.Marshal(errorDoc{Code: code, Message: msg, RequestID: requestID})
	return append([]byte(xml.Header), b...)
}
