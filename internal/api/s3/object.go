package s3

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/objects"
)

// received is an uploaded body, written and synced, with its digests.
type received struct {
	seg       objects.Segment
	size      int64
	etag      string
	checksums map[string]string // the algorithms the client named or asked for
	w         *objects.Writer
}

// receive streams a PUT's body (an object or a part) to a file, checking
// as it goes every digest the request declares: Content-MD5, the
// signature's SHA-256, checksums in headers or the trailer, the chunk
// signatures of a signed stream. Any mismatch leaves nothing behind.
func (a *API) receive(r *http.Request) (*received, error) {
	p := auth.From(r.Context())
	var pl *auth.Payload
	if p != nil {
		pl = p.Payload
	}
	if pl == nil {
		pl = &auth.Payload{Chunked: strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked")}
	}
	size := r.ContentLength
	if pl.Chunked {
		v := r.Header.Get("X-Amz-Decoded-Content-Length")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, &s3Error{Status: http.StatusLengthRequired, Code: "MissingContentLength", Message: "You must provide the Content-Length HTTP header (x-amz-decoded-content-length for an aws-chunked body)."}
		}
		size = n
	}
	if size < 0 {
		return nil, &s3Error{Status: http.StatusLengthRequired, Code: "MissingContentLength", Message: "You must provide the Content-Length HTTP header."}
	}
	if size > objects.MaxObjectSize {
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "EntityTooLarge", Message: "Your proposed upload exceeds the maximum allowed size"}
	}
	var wantMD5 []byte
	if v := r.Header.Get("Content-MD5"); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) != md5.Size {
			return nil, &s3Error{Status: http.StatusBadRequest, Code: "InvalidDigest", Message: "The Content-MD5 you specified is not valid."}
		}
		wantMD5 = b
	}
	want, serr := declared(r.Header)
	if serr != nil {
		return nil, serr
	}
	h := &hashers{md5: md5.New(), sums: map[string]hash.Hash{}}
	if pl.SHA256 != "" {
		h.sha = sha256.New()
	}
	for alg := range want {
		h.sums[alg] = newHash(alg)
	}
	body := io.Reader(r.Body)
	var chunks *chunkedReader
	if pl.Chunked {
		chunks = newChunkedReader(r.Body, pl.Chunks)
		body = chunks
	}
	fw, err := a.st.Files().Create(size)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(fw, io.TeeReader(io.LimitReader(body, size+1), h))
	if err != nil {
		fw.Abort()
		var e *s3Error
		if errors.As(err, &e) || errors.Is(err, objects.ErrNoSpace) || errors.Is(err, errChunkSig) || errors.Is(err, errFraming) || errors.Is(err, errOversized) || errors.Is(err, errTrailer) {
			return nil, err
		}
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: "You did not provide the number of bytes specified by the Content-Length HTTP header: " + err.Error()}
	}
	if n != size {
		fw.Abort()
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "IncompleteBody", Message: "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	}
	if chunks != nil {
		// The rest of the framing (the last chunk, the trailer) must be read
		// for the trailer's checksums.
		if _, err := io.Copy(io.Discard, chunks); err != nil {
			fw.Abort()
			return nil, err
		}
		for alg := range want {
			if v := chunks.trailer.Get(strings.ToLower(checksumHeader(alg))); v != "" {
				want[alg] = v
			}
		}
	}
	if h.sha != nil && hex.EncodeToString(h.sha.Sum(nil)) != pl.SHA256 {
		fw.Abort()
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "XAmzContentSHA256Mismatch", Message: "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	sum := h.md5.Sum(nil)
	if wantMD5 != nil && string(wantMD5) != string(sum) {
		fw.Abort()
		return nil, errBadDigest("The Content-MD5 you specified did not match what we received.")
	}
	got := map[string]string{}
	for alg, hh := range h.sums {
		got[alg] = b64(hh)
		if v := want[alg]; v != "" && v != got[alg] {
			fw.Abort()
			return nil, errBadDigest("The " + alg + " you specified did not match the calculated checksum.")
		}
	}
	seg, err := fw.Commit()
	if err != nil {
		return nil, err
	}
	return &received{seg: seg, size: n, etag: hex.EncodeToString(sum), checksums: got, w: fw}, nil
}

// headersOf reads what a PUT sets on an object; x-amz-meta-* is bounded.
func headersOf(h http.Header) (objects.Headers, error) {
	out := objects.Headers{
		ContentType:        h.Get("Content-Type"),
		ContentEncoding:    stripChunked(h.Get("Content-Encoding")),
		ContentDisposition: h.Get("Content-Disposition"),
		ContentLanguage:    h.Get("Content-Language"),
		CacheControl:       h.Get("Cache-Control"),
		Expires:            h.Get("Expires"),
	}
	size := 0
	for k, v := range h {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, "x-amz-meta-"); ok {
			if out.Meta == nil {
				out.Meta = map[string]string{}
			}
			val := strings.Join(v, ",")
			out.Meta[name] = val
			size += len(name) + len(val)
		}
	}
	if size > objects.MaxMetaBytes {
		return out, &s3Error{Status: http.StatusBadRequest, Code: "MetadataTooLarge", Message: "Your metadata headers exceed the maximum allowed metadata size"}
	}
	return out, nil
}

// stripChunked removes aws-chunked, a transfer framing and not the
// object's encoding.
func stripChunked(v string) string {
	var keep []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" && p != "aws-chunked" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, ",")
}

func (a *API) putObject(w http.ResponseWriter, r *http.Request, t target) error {
	if err := a.allow(r, "s3:PutObject", objectARN(t.bucket, t.key)); err != nil {
		return err
	}
	if _, err := a.st.Bucket(t.bucket); err != nil {
		return err
	}
	hdr, err := headersOf(r.Header)
	if err != nil {
		return err
	}
	ifNoneMatch := r.Header.Get("If-None-Match")
	if ifNoneMatch != "" && ifNoneMatch != "*" {
		return errNotImplemented
	}
	if ifNoneMatch == "*" {
		if _, err := a.st.Head(t.bucket, t.key); err == nil {
			return objects.ErrPrecondition // before reading the body
		}
	}
	rc, err := a.receive(r)
	if err != nil {
		return err
	}
	o := &objects.Object{Bucket: t.bucket, Key: t.key, Size: rc.size, ETag: rc.etag, Headers: hdr,
		Checksums: rc.checksums, Segments: []objects.Segment{rc.seg}}
	if len(o.Checksums) > 0 {
		o.ChecksumType = "FULL_OBJECT"
	}
	if err := a.st.Put(r.Context(), o, ifNoneMatch == "*", r.Header.Get("If-Match")); err != nil {
		a.st.Files().Remove(rc.seg)
		return err
	}
	a.notify(r, "ObjectCreated:Put", o)
	h := w.Header()
	h.Set("ETag", `"`+o.ETag+`"`)
	for alg, v := range o.Checksums {
		h.Set(checksumHeader(alg), v)
	}
	if len(o.Checksums) > 0 {
		h.Set("X-Amz-Checksum-Type", o.ChecksumType)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// byteRange is an inclusive range of an object.
type byteRange struct{ start, end int64 }

// parseRange reads a single "bytes=" range against size. ok false means
// ignore the header (not a single byte range); a satisfiable false
// range answers 416.
func parseRange(v string, size int64) (br byteRange, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return br, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return br, false, false
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return br, false, false
		}
		if n == 0 || size == 0 {
			return br, true, false
		}
		n = min(n, size)
		return byteRange{size - n, size - 1}, true, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return br, false, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || e < s {
			return br, false, false
		}
		e = min(e, size-1)
	}
	if s >= size {
		return br, true, false
	}
	return byteRange{s, e}, true, true
}

// preconditions applies If-Match, If-Unmodified-Since, If-None-Match and
// If-Modified-Since, in that order, as S3 does.
func preconditions(h http.Header, etag string, modified time.Time, get bool) error {
	match := func(list string) bool {
		for _, e := range strings.Split(list, ",") {
			e = strings.TrimSpace(e)
			if e == "*" || strings.Trim(strings.TrimPrefix(e, "W/"), `"`) == etag {
				return true
			}
		}
		return false
	}
	mod := modified.Truncate(time.Second)
	im := h.Get("If-Match")
	if im != "" && !match(im) {
		return objects.ErrPrecondition
	}
	if v := h.Get("If-Unmodified-Since"); v != "" && im == "" {
		if t, err := http.ParseTime(v); err == nil && mod.After(t) {
			return objects.ErrPrecondition
		}
	}
	inm := h.Get("If-None-Match")
	if inm != "" && match(inm) {
		if get {
			return errNotModified
		}
		return objects.ErrPrecondition
	}
	if v := h.Get("If-Modified-Since"); v != "" && inm == "" && get {
		if t, err := http.ParseTime(v); err == nil && !mod.After(t) {
			return errNotModified
		}
	}
	return nil
}

var errNotModified = errors.New("not modified")

func (a *API) getObject(w http.ResponseWriter, r *http.Request, t target, q url.Values) error {
	if err := a.allow(r, "s3:GetObject", objectARN(t.bucket, t.key)); err != nil {
		return err
	}
	o, err := a.st.Head(t.bucket, t.key)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("ETag", `"`+o.ETag+`"`)
	h.Set("Last-Modified", o.Modified.UTC().Format(http.TimeFormat))
	if err := preconditions(r.Header, o.ETag, o.Modified, true); err != nil {
		if errors.Is(err, errNotModified) {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		return err
	}
	ct := o.Headers.ContentType
	if ct == "" {
		ct = "binary/octet-stream"
	}
	set := func(name, v string) {
		if v != "" {
			h.Set(name, v)
		}
	}
	set("Content-Type", ct)
	set("Content-Encoding", o.Headers.ContentEncoding)
	set("Content-Disposition", o.Headers.ContentDisposition)
	set("Content-Language", o.Headers.ContentLanguage)
	set("Cache-Control", o.Headers.CacheControl)
	set("Expires", o.Headers.Expires)
	for k, v := range o.Headers.Meta {
		h["X-Amz-Meta-"+k] = []string{v}
	}
	if o.Parts > 0 {
		h.Set("X-Amz-Mp-Parts-Count", strconv.Itoa(o.Parts))
	}
	// response-* overrides, as on a signed GET.
	for param, name := range map[string]string{"response-content-type": "Content-Type", "response-content-language": "Content-Language",
		"response-expires": "Expires", "response-cache-control": "Cache-Control", "response-content-disposition": "Content-Disposition",
		"response-content-encoding": "Content-Encoding"} {
		if v := q.Get(param); v != "" {
			h.Set(name, v)
		}
	}
	h.Set("Accept-Ranges", "bytes")
	start, length, status := int64(0), o.Size, http.StatusOK
	if v := r.Header.Get("Range"); v != "" {
		br, ok, satisfiable := parseRange(v, o.Size)
		if ok && !satisfiable {
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(o.Size, 10))
			return &s3Error{Status: http.StatusRequestedRangeNotSatisfiable, Code: "InvalidRange", Message: "The requested range is not satisfiable"}
		}
		if ok {
			start, length, status = br.start, br.end-br.start+1, http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.start, br.end, o.Size))
		}
	}
	// Checksums are of the whole object: a range gets none.
	if status == http.StatusOK && strings.EqualFold(r.Header.Get("X-Amz-Checksum-Mode"), "ENABLED") && len(o.Checksums) > 0 {
		for alg, v := range o.Checksums {
			h.Set(checksumHeader(alg), v)
		}
		h.Set("X-Amz-Checksum-Type", o.ChecksumType)
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return nil
	}
	rd, err := a.st.Reader(o, start, length)
	if err != nil {
		return err
	}
	defer rd.Close()
	w.WriteHeader(status)
	_, _ = io.Copy(w, rd)
	return nil
}

func (a *API) deleteObject(w http.ResponseWriter, r *http.Request, t target) error {
	if err := a.allow(r, "s3:DeleteObject", objectARN(t.bucket, t.key)); err != nil {
		return err
	}
	if v := r.Header.Get("If-Match"); v != "" {
		o, err := a.st.Head(t.bucket, t.key)
		if err != nil {
			return err
		}
		if v != "*" && strings.Trim(v, `"`) != o.ETag {
			return objects.ErrPrecondition
		}
	}
	o, _ := a.st.Head(t.bucket, t.key)
	existed, err := a.st.Delete(r.Context(), t.bucket, t.key)
	if err != nil {
		return err
	}
	if existed {
		a.notify(r, "ObjectRemoved:Delete", o)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) deleteObjects(w http.ResponseWriter, r *http.Request, b string) error {
	var in struct {
		Quiet   bool `xml:"Quiet"`
		Objects []struct {
			Key string `xml:"Key"`
		} `xml:"Object"`
	}
	if err := readXML(r, 2<<20, &in); err != nil {
		return err
	}
	if len(in.Objects) > 1000 {
		return errMalformedXML()
	}
	if _, err := a.st.Bucket(b); err != nil {
		return err
	}
	type deleted struct {
		Key string `xml:"Key"`
	}
	type failed struct {
		Key     string `xml:"Key"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	out := struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		NS      string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
		Errors  []failed  `xml:"Error"`
	}{NS: xmlns}
	for _, o := range in.Objects {
		err := a.allow(r, "s3:DeleteObject", objectARN(b, o.Key))
		var old *objects.Object
		if err == nil {
			old, _ = a.st.Head(b, o.Key)
			var existed bool
			if existed, err = a.st.Delete(r.Context(), b, o.Key); existed {
				a.notify(r, "ObjectRemoved:Delete", old)
			}
		}
		if err != nil {
			e := wire(err)
			out.Errors = append(out.Errors, failed{Key: o.Key, Code: e.Code, Message: e.Message})
			continue
		}
		if !in.Quiet {
			out.Deleted = append(out.Deleted, deleted{Key: o.Key})
		}
	}
	return writeXML(w, http.StatusOK, out)
}

// copySource parses x-amz-copy-source: "/bucket/key" or "bucket/key",
// URL-encoded, with an optional ?versionId.
func copySource(v string) (bucket, key string, err error) {
	v, _, _ = strings.Cut(v, "?versionId=")
	if u, uerr := url.PathUnescape(v); uerr == nil {
		v = u
	}
	v = strings.TrimPrefix(v, "/")
	bucket, key, ok := strings.Cut(v, "/")
	if !ok || bucket == "" || key == "" {
		return "", "", errInvalidArgument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey.")
	}
	return bucket, key, nil
}

// copyFrom writes n bytes of src from off into a new file.
func (a *API) copyFrom(src *objects.Object, off, n int64) (objects.Segment, string, error) {
	rd, err := a.st.Reader(src, off, n)
	if err != nil {
		return objects.Segment{}, "", err
	}
	defer rd.Close()
	fw, err := a.st.Files().Create(n)
	if err != nil {
		return objects.Segment{}, "", err
	}
	sum := md5.New()
	if _, err := io.Copy(fw, io.TeeReader(rd, sum)); err != nil {
		fw.Abort()
		return objects.Segment{}, "", err
	}
	seg, err := fw.Commit()
	return seg, hex.EncodeToString(sum.Sum(nil)), err
}

func (a *API) sourceObject(r *http.Request) (*objects.Object, error) {
	sb, sk, err := copySource(r.Header.Get("X-Amz-Copy-Source"))
	if err != nil {
		return nil, err
	}
	if err := a.allow(r, "s3:GetObject", objectARN(sb, sk)); err != nil {
		return nil, err
	}
	src, err := a.st.Head(sb, sk)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, n := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if v := r.Header.Get("X-Amz-Copy-Source-" + n); v != "" {
			h.Set(n, v)
		}
	}
	if err := preconditions(h, src.ETag, src.Modified, false); err != nil {
		return nil, err
	}
	return src, nil
}

func (a *API) copyObject(w http.ResponseWriter, r *http.Request, t target) error {
	if err := a.allow(r, "s3:PutObject", objectARN(t.bucket, t.key)); err != nil {
		return err
	}
	if _, err := a.st.Bucket(t.bucket); err != nil {
		return err
	}
	src, err := a.sourceObject(r)
	if err != nil {
		return err
	}
	hdr := src.Headers
	directive := r.Header.Get("X-Amz-Metadata-Directive")
	switch directive {
	case "", "COPY":
		if src.Bucket == t.bucket && src.Key == t.key {
			return errInvalidRequest("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
		}
	case "REPLACE":
		if hdr, err = headersOf(r.Header); err != nil {
			return err
		}
	default:
		return errInvalidArgument("Unknown metadata directive.")
	}
	seg, sum, err := a.copyFrom(src, 0, src.Size)
	if err != nil {
		return err
	}
	// The copy is one piece: its ETag is its MD5, and only a checksum of
	// the whole object carries over.
	o := &objects.Object{Bucket: t.bucket, Key: t.key, Size: src.Size, ETag: sum, Headers: hdr, Segments: []objects.Segment{seg}}
	if src.ChecksumType == "FULL_OBJECT" {
		o.Checksums, o.ChecksumType = src.Checksums, src.ChecksumType
	}
	if err := a.st.Put(r.Context(), o, false, ""); err != nil {
		a.st.Files().Remove(seg)
		return err
	}
	a.notify(r, "ObjectCreated:Copy", o)
	return writeXML(w, http.StatusOK, struct {
		XMLName      xml.Name `xml:"CopyObjectResult"`
		NS           string   `xml:"xmlns,attr"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
	}{NS: xmlns, ETag: `"` + o.ETag + `"`, LastModified: isoTime(o.Modified)})
}

type listEntry struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
	Owner        *owner `xml:"Owner,omitempty"`
	Algorithm    string `xml:"ChecksumAlgorithm,omitempty"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

func entries(objs []*objects.Object, enc func(string) string, withOwner bool) []listEntry {
	out := make([]listEntry, 0, len(objs))
	for _, o := range objs {
		e := listEntry{Key: enc(o.Key), LastModified: isoTime(o.Modified), ETag: `"` + o.ETag + `"`, Size: o.Size, StorageClass: "STANDARD"}
		if withOwner {
			e.Owner = &theOwner
		}
		for alg := range o.Checksums {
			e.Algorithm = alg
		}
		out = append(out, e)
	}
	return out
}

// maxParam is a listing's page size (max-keys, max-parts, max-uploads):
// 1,000 unless asked for fewer.
func maxParam(q url.Values, name string) (int, error) {
	v := q.Get(name)
	if v == "" {
		return 1000, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errInvalidArgument("Provided " + name + " not an integer or within integer range")
	}
	return min(n, 1000), nil
}

func listParams(q url.Values) (max int, enc func(string) string, err error) {
	if max, err = maxParam(q, "max-keys"); err != nil {
		return 0, nil, err
	}
	enc = func(s string) string { return s }
	switch q.Get("encoding-type") {
	case "":
	case "url":
		enc = func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "%2F", "/") }
	default:
		return 0, nil, errInvalidArgument("Invalid Encoding Method specified in Request")
	}
	return max, enc, nil
}

func (a *API) listV2(w http.ResponseWriter, r *http.Request, b string, q url.Values) error {
	if err := a.allow(r, "s3:ListBucket", bucketARN(b)); err != nil {
		return err
	}
	max, enc, err := listParams(q)
	if err != nil {
		return err
	}
	after := q.Get("start-after")
	if tok := q.Get("continuation-token"); tok != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(tok)
		if derr != nil {
			return errInvalidArgument("The continuation token provided is incorrect")
		}
		after = string(raw)
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	l, err := a.st.List(b, prefix, delim, after, max)
	if err != nil {
		return err
	}
	out := struct {
		XMLName        xml.Name       `xml:"ListBucketResult"`
		NS             string         `xml:"xmlns,attr"`
		Name           string         `xml:"Name"`
		Prefix         string         `xml:"Prefix"`
		Delimiter      string         `xml:"Delimiter,omitempty"`
		MaxKeys        int            `xml:"MaxKeys"`
		EncodingType   string         `xml:"EncodingType,omitempty"`
		KeyCount       int            `xml:"KeyCount"`
		IsTruncated    bool           `xml:"IsTruncated"`
		Token          string         `xml:"ContinuationToken,omitempty"`
		NextToken      string         `xml:"NextContinuationToken,omitempty"`
		StartAfter     string         `xml:"StartAfter,omitempty"`
		Contents       []listEntry    `xml:"Contents"`
		CommonPrefixes []commonPrefix `xml:"CommonPrefixes"`
	}{NS: xmlns, Name: b, Prefix: enc(prefix), Delimiter: enc(delim), MaxKeys: max, EncodingType: q.Get("encoding-type"),
		KeyCount: len(l.Objects) + len(l.Prefixes), IsTruncated: l.Truncated, Token: q.Get("continuation-token"), StartAfter: enc(q.Get("start-after")),
		Contents: entries(l.Objects, enc, q.Get("fetch-owner") == "true")}
	for _, p := range l.Prefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, commonPrefix{enc(p)})
	}
	if l.Truncated {
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(l.Next))
	}
	return writeXML(w, http.StatusOK, out)
}

func (a *API) listV1(w http.ResponseWriter, r *http.Request, b string, q url.Values) error {
	if err := a.allow(r, "s3:ListBucket", bucketARN(b)); err != nil {
		return err
	}
	max, enc, err := listParams(q)
	if err != nil {
		return err
	}
	prefix, delim, marker := q.Get("prefix"), q.Get("delimiter"), q.Get("marker")
	l, err := a.st.List(b, prefix, delim, marker, max)
	if err != nil {
		return err
	}
	out := struct {
		XMLName        xml.Name       `xml:"ListBucketResult"`
		NS             string         `xml:"xmlns,attr"`
		Name           string         `xml:"Name"`
		Prefix         string         `xml:"Prefix"`
		Marker         string         `xml:"Marker"`
		NextMarker     string         `xml:"NextMarker,omitempty"`
		Delimiter      string         `xml:"Delimiter,omitempty"`
		MaxKeys        int            `xml:"MaxKeys"`
		EncodingType   string         `xml:"EncodingType,omitempty"`
		IsTruncated    bool           `xml:"IsTruncated"`
		Contents       []listEntry    `xml:"Contents"`
		CommonPrefixes []commonPrefix `xml:"CommonPrefixes"`
	}{NS: xmlns, Name: b, Prefix: enc(prefix), Marker: enc(marker), Delimiter: enc(delim), MaxKeys: max, EncodingType: q.Get("encoding-type"),
		IsTruncated: l.Truncated, Contents: entries(l.Objects, enc, true)}
	for _, p := range l.Prefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, commonPrefix{enc(p)})
	}
	if l.Truncated && delim != "" {
		out.NextMarker = enc(l.Next)
	}
	return writeXML(w, http.StatusOK, out)
}
