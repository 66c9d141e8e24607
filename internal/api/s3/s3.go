// Package s3 serves the S3 REST API (path-style and virtual-hosted) over
// the objects store: buckets, objects with ranges, conditionals and
// checksums, listings, copies, multipart uploads, and bucket
// notifications that start functions or fill queues.
package s3

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/objects"
	"github.com/stratus-faas/stratus/internal/recursion"
)

// Notifier delivers bucket events.
type Notifier interface {
	// Deliver hands event to the destination arn (a function or a
	// queue) durably before returning; id names the event, so that a
	// retried delivery runs once.
	Deliver(ctx context.Context, arn string, event []byte, id string) error
	// Check says why arn cannot take events from S3 for bucket (it does
	// not exist, or its policy does not let S3 deliver), or nil.
	Check(arn, bucket string) error
}

// Options configure the API.
type Options struct {
	Region string
	// Hosts are the names under which a bucket may be addressed as a
	// subdomain (virtual-hosted style): BUCKET.HOST.
	Hosts  []string
	Notify Notifier
	Log    *slog.Logger
	// Meter, when set, counts each request on a bucket by its price tier.
	Meter interface{ Request(bucket string, tier int) }
}

// API serves S3.
type API struct {
	st   *objects.Store
	auth auth.Authorizer
	opts Options
	log  *slog.Logger
}

// New returns the API; authz decides what each caller may do (nil allows
// nothing).
func New(st *objects.Store, authz auth.Authorizer, opts Options) *API {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	return &API{st: st, auth: authz, opts: opts, log: log}
}

const xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"

// target is what a request addresses.
type target struct {
	bucket, key string
	hasKey      bool
}

// address finds the bucket and key: from the Host when it is a
// subdomain of one of ours, else from the path.
func (a *API) address(r *http.Request) target {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	path := r.URL.Path
	for _, base := range a.opts.Hosts {
		if b, ok := strings.CutSuffix(host, "."+base); ok && b != "" {
			t := target{bucket: b}
			if k := strings.TrimPrefix(path, "/"); k != "" || strings.HasSuffix(path, "/") && len(path) > 1 {
				t.key, t.hasKey = k, k != ""
			}
			return t
		}
	}
	rest := strings.TrimPrefix(path, "/")
	b, k, slash := strings.Cut(rest, "/")
	return target{bucket: b, key: k, hasKey: slash && k != ""}
}

func bucketARN(b string) string    { return "arn:aws:s3:::" + b }
func objectARN(b, k string) string { return "arn:aws:s3:::" + b + "/" + k }
func (a *API) allow(r *http.Request, action, resource string) error {
	return auth.Ask(r.Context(), a.auth, action, resource)
}

// ServeHTTP answers one S3 request.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := w.Header().Get("X-Amzn-RequestId")
	w.Header().Set("X-Amz-Request-Id", id)
	// The trace header travels with the events an upload causes.
	r = r.WithContext(recursion.WithTrace(context.WithValue(r.Context(), requestIDKey{}, id), r.Header.Get("X-Amzn-Trace-Id")))
	t := a.address(r)
	q := r.URL.Query()
	if a.opts.Meter != nil {
		a.opts.Meter.Request(t.bucket, tier(r.Method, q, t.hasKey))
	}
	var err error
	switch {
	case t.bucket == "":
		if r.Method != http.MethodGet {
			err = methodNotAllowed()
			break
		}
		err = a.listBuckets(w, r)
	case !t.hasKey:
		err = a.bucketOp(w, r, t.bucket, q)
	default:
		err = a.objectOp(w, r, t, q)
	}
	if err != nil {
		if e := wire(err); e.Status >= 500 {
			a.log.Error("s3", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		writeError(w, r, err)
	}
}

// tier is a request's price tier as S3 bills it: 1 for PUT, COPY, POST
// and LIST, 2 for GET, HEAD and the rest, 0 for DELETE (free).
func tier(method string, q url.Values, hasKey bool) int {
	switch method {
	case http.MethodDelete:
		return 0
	case http.MethodPut, http.MethodPost:
		return 1
	case http.MethodGet:
		if !hasKey && (q.Get("list-type") == "2" || isListV1(q) || q.Has("uploads")) || hasKey && q.Has("uploadId") {
			return 1 // listings
		}
	}
	return 2
}

func methodNotAllowed() *s3Error {
	return &s3Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: "The specified method is not allowed against this resource."}
}

func (a *API) bucketOp(w http.ResponseWriter, r *http.Request, b string, q url.Values) error {
	switch r.Method {
	case http.MethodPut:
		switch {
		case q.Has("notification"):
			return a.putNotification(w, r, b)
		case q.Has("tagging"):
			return a.putTagging(w, r, b)
		case len(q) == 0:
			return a.createBucket(w, r, b)
		}
	case http.MethodHead:
		if err := a.allow(r, "s3:ListBucket", bucketARN(b)); err != nil {
			return err
		}
		bk, err := a.st.Bucket(b)
		if err != nil {
			return err
		}
		w.Header().Set("X-Amz-Bucket-Region", bk.Region)
		w.WriteHeader(http.StatusOK)
		return nil
	case http.MethodDelete:
		switch {
		case q.Has("tagging"):
			return a.deleteTagging(w, r, b)
		case len(q) == 0:
			if err := a.allow(r, "s3:DeleteBucket", bucketARN(b)); err != nil {
				return err
			}
			if err := a.st.DeleteBucket(r.Context(), b); err != nil {
				return err
			}
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
	case http.MethodGet:
		switch {
		case q.Has("location"):
			if err := a.allow(r, "s3:GetBucketLocation", bucketARN(b)); err != nil {
				return err
			}
			bk, err := a.st.Bucket(b)
			if err != nil {
				return err
			}
			loc := bk.Region
			if loc == "us-east-1" {
				loc = "" // as S3 answers for us-east-1
			}
			return writeXML(w, http.StatusOK, struct {
				XMLName xml.Name `xml:"LocationConstraint"`
				NS      string   `xml:"xmlns,attr"`
				Value   string   `xml:",chardata"`
			}{NS: xmlns, Value: loc})
		case q.Has("notification"):
			return a.getNotification(w, r, b)
		case q.Has("tagging"):
			return a.getTagging(w, r, b)
		case q.Has("uploads"):
			return a.listUploads(w, r, b, q)
		case q.Has("versioning"):
			if err := a.allow(r, "s3:GetBucketVersioning", bucketARN(b)); err != nil {
				return err
			}
			if _, err := a.st.Bucket(b); err != nil {
				return err
			}
			return writeXML(w, http.StatusOK, struct {
				XMLName xml.Name `xml:"VersioningConfiguration"`
				NS      string   `xml:"xmlns,attr"`
			}{NS: xmlns})
		case q.Get("list-type") == "2":
			return a.listV2(w, r, b, q)
		case isListV1(q):
			return a.listV1(w, r, b, q)
		}
		return errNotImplemented
	case http.MethodPost:
		if q.Has("delete") {
			return a.deleteObjects(w, r, b)
		}
	}
	if r.Method == http.MethodGet || r.Method == http.MethodPut || r.Method == http.MethodDelete {
		return errNotImplemented
	}
	return methodNotAllowed()
}

// isListV1 is a GET on a bucket with only ListObjects' parameters.
func isListV1(q url.Values) bool {
	for k := range q {
		switch k {
		case "prefix", "delimiter", "marker", "max-keys", "encoding-type":
		default:
			return false
		}
	}
	return true
}

func (a *API) objectOp(w http.ResponseWriter, r *http.Request, t target, q url.Values) error {
	if len(t.key) > objects.MaxKeyLength {
		return &s3Error{Status: http.StatusBadRequest, Code: "KeyTooLongError", Message: "Your key is too long"}
	}
	switch r.Method {
	case http.MethodPut:
		switch {
		case q.Has("uploadId"):
			if r.Header.Get("X-Amz-Copy-Source") != "" {
				return a.uploadPartCopy(w, r, t, q)
			}
			return a.uploadPart(w, r, t, q)
		case q.Has("tagging") || q.Has("acl") || q.Has("retention") || q.Has("legal-hold"):
			return errNotImplemented
		case r.Header.Get("X-Amz-Copy-Source") != "":
			return a.copyObject(w, r, t)
		}
		return a.putObject(w, r, t)
	case http.MethodGet, http.MethodHead:
		if q.Has("uploadId") && r.Method == http.MethodGet {
			return a.listParts(w, r, t, q)
		}
		if q.Has("tagging") || q.Has("acl") || q.Has("attributes") {
			return errNotImplemented
		}
		return a.getObject(w, r, t, q)
	case http.MethodDelete:
		if q.Has("uploadId") {
			return a.abortUpload(w, r, t, q)
		}
		return a.deleteObject(w, r, t)
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return a.createUpload(w, r, t)
		case q.Has("uploadId"):
			return a.completeUpload(w, r, t, q)
		}
	}
	return methodNotAllowed()
}

func writeXML(w http.ResponseWriter, status int, v any) error {
	b, err := xml.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(b)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(b)
	return nil
}

// readXML decodes a small XML body (a configuration, a list of parts or
// keys) into v.
func readXML(r *http.Request, limit int64, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return &s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: "The request body could not be read."}
	}
	if int64(len(body)) > limit {
		return &s3Error{Status: http.StatusBadRequest, Code: "MaxMessageLengthExceeded", Message: "Your request was too big."}
	}
	if err := xml.Unmarshal(body, v); err != nil {
		return errMalformedXML()
	}
	return nil
}

// Bucket names as S3 allows them in every region.
var bucketNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

func validBucketName(b string) bool {
	if !bucketNameRE.MatchString(b) || strings.Contains(b, "..") || net.ParseIP(b) != nil {
		return false
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(b, p) {
			return false
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(b, s) {
			return false
		}
	}
	return true
}

func (a *API) createBucket(w http.ResponseWriter, r *http.Request, b string) error {
	if err := a.allow(r, "s3:CreateBucket", bucketARN(b)); err != nil {
		return err
	}
	if !validBucketName(b) {
		return &s3Error{Status: http.StatusBadRequest, Code: "InvalidBucketName", Message: "The specified bucket is not valid.", Resource: b}
	}
	var cfg struct {
		Location string `xml:"LocationConstraint"`
	}
	if r.ContentLength != 0 {
		if err := readXML(r, 64<<10, &cfg); err != nil {
			return err
		}
	}
	if cfg.Location != "" && cfg.Location != a.opts.Region {
		return &s3Error{Status: http.StatusBadRequest, Code: "IllegalLocationConstraintException",
			Message: "The " + cfg.Location + " location constraint is incompatible for the region specific endpoint this request was sent to."}
	}
	err := a.st.CreateBucket(r.Context(), b, a.opts.Region)
	if errors.Is(err, objects.ErrBucketOwned) && a.opts.Region == "us-east-1" {
		err = nil // us-east-1 answers 200 to a bucket you already own
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/"+b)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) listBuckets(w http.ResponseWriter, r *http.Request) error {
	if err := a.allow(r, "s3:ListAllMyBuckets", "*"); err != nil {
		return err
	}
	type bucket struct {
		Name         string `xml:"Name"`
		CreationDate string `xml:"CreationDate"`
		Region       string `xml:"BucketRegion"`
	}
	out := struct {
		XMLName xml.Name `xml:"ListAllMyBucketsResult"`
		NS      string   `xml:"xmlns,attr"`
		Owner   owner    `xml:"Owner"`
		Buckets []bucket `xml:"Buckets>Bucket"`
	}{NS: xmlns, Owner: theOwner}
	for _, b := range a.st.Buckets() {
		out.Buckets = append(out.Buckets, bucket{Name: b.Name, CreationDate: isoTime(b.Created), Region: b.Region})
	}
	return writeXML(w, http.StatusOK, out)
}

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

var theOwner = owner{ID: auth.Account, DisplayName: "stratus"}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type tag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type tagging struct {
	XMLName xml.Name `xml:"Tagging"`
	NS      string   `xml:"xmlns,attr,omitempty"`
	Tags    []tag    `xml:"TagSet>Tag"`
}

func (a *API) putTagging(w http.ResponseWriter, r *http.Request, b string) error {
	if err := a.allow(r, "s3:PutBucketTagging", bucketARN(b)); err != nil {
		return err
	}
	var in tagging
	if err := readXML(r, 64<<10, &in); err != nil {
		return err
	}
	if len(in.Tags) > 50 {
		return errInvalidArgument("Object tags cannot be greater than 50")
	}
	tags := map[string]string{}
	for _, t := range in.Tags {
		if t.Key == "" || len(t.Key) > 128 || len(t.Value) > 256 {
			return &s3Error{Status: http.StatusBadRequest, Code: "InvalidTag", Message: "The TagKey you have provided is invalid"}
		}
		if _, dup := tags[t.Key]; dup {
			return &s3Error{Status: http.StatusBadRequest, Code: "InvalidTag", Message: "Cannot provide multiple Tags with the same key"}
		}
		tags[t.Key] = t.Value
	}
	if err := a.st.UpdateBucket(r.Context(), b, func(bk *objects.Bucket) error { bk.Tags = tags; return nil }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) getTagging(w http.ResponseWriter, r *http.Request, b string) error {
	if err := a.allow(r, "s3:GetBucketTagging", bucketARN(b)); err != nil {
		return err
	}
	bk, err := a.st.Bucket(b)
	if err != nil {
		return err
	}
	if len(bk.Tags) == 0 {
		return &s3Error{Status: http.StatusNotFound, Code: "NoSuchTagSet", Message: "The TagSet does not exist"}
	}
	out := tagging{NS: xmlns}
	for k, v := range bk.Tags {
		out.Tags = append(out.Tags, tag{k, v})
	}
	return writeXML(w, http.StatusOK, out)
}

func (a *API) deleteTagging(w http.ResponseWriter, r *http.Request, b string) error {
	if err := a.allow(r, "s3:PutBucketTagging", bucketARN(b)); err != nil {
		return err
	}
	if err := a.st.UpdateBucket(r.Context(), b, func(bk *objects.Bucket) error { bk.Tags = nil; return nil }); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
