package s3

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/stratus-faas/stratus/internal/objects"
)

func (a *API) createUpload(w http.ResponseWriter, r *http.Request, t target) error {
	if err := a.allow(r, "s3:PutObject", objectARN(t.bucket, t.key)); err != nil {
		return err
	}
	hdr, err := headersOf(r.Header)
	if err != nil {
		return err
	}
	u := &objects.Upload{Bucket: t.bucket, Key: t.key, Headers: hdr}
	if alg := strings.ToUpper(r.Header.Get("X-Amz-Checksum-Algorithm")); alg != "" {
		if !validAlgorithm(alg) {
			return errInvalidArgument("Checksum algorithm " + alg + " is not supported.")
		}
		u.Algorithm, u.Type = alg, strings.ToUpper(r.Header.Get("X-Amz-Checksum-Type"))
		if u.Type == "" {
			u.Type = "COMPOSITE"
			if alg == "CRC64NVME" {
				u.Type = "FULL_OBJECT"
			}
		}
		if u.Type != "COMPOSITE" && u.Type != "FULL_OBJECT" {
			return errInvalidArgument("Value for x-amz-checksum-type header is invalid.")
		}
	}
	if err := a.st.CreateUpload(r.Context(), u); err != nil {
		return err
	}
	if u.Algorithm != "" {
		w.Header().Set("X-Amz-Checksum-Algorithm", u.Algorithm)
		w.Header().Set("X-Amz-Checksum-Type", u.Type)
	}
	return writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}{NS: xmlns, Bucket: t.bucket, Key: t.key, UploadID: u.ID})
}

func partNumber(q url.Values) (int, error) {
	n, err := strconv.Atoi(q.Get("partNumber"))
	if err != nil || n < 1 || n > objects.MaxParts {
		return 0, errInvalidArgument("Part number must be an integer between 1 and 10000, inclusive")
	}
	return n, nil
}

// partOf is what a part upload or copy names: the upload and the part's
// number, the caller allowed to write the object.
func (a *API) partOf(r *http.Request, t target, q url.Values) (*objects.Upload, int, error) {
	if err := a.allow(r, "s3:PutObject", objectARN(t.bucket, t.key)); err != nil {
		return nil, 0, err
	}
	n, err := partNumber(q)
	if err != nil {
		return nil, 0, err
	}
	u, err := a.st.Upload(t.bucket, t.key, q.Get("uploadId"))
	return u, n, err
}

func (a *API) uploadPart(w http.ResponseWriter, r *http.Request, t target, q url.Values) error {
	u, n, err := a.partOf(r, t, q)
	if err != nil {
		return err
	}
	rc, err := a.receive(r)
	if err != nil {
		return err
	}
	p := &objects.Part{Number: n, Size: rc.size, ETag: rc.etag, Checksums: rc.checksums, Segment: rc.seg}
	if err := a.st.PutPart(r.Context(), u, p); err != nil {
		a.st.Files().Remove(rc.seg)
		return err
	}
	w.Header().Set("ETag", `"`+p.ETag+`"`)
	for alg, v := range p.Checksums {
		w.Header().Set(checksumHeader(alg), v)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) uploadPartCopy(w http.ResponseWriter, r *http.Request, t target, q url.Values) error {
	u, n, err := a.partOf(r, t, q)
	if err != nil {
		return err
	}
	src, err := a.sourceObject(r)
	if err != nil {
		return err
	}
	off, length := int64(0), src.Size
	if v := r.Header.Get("X-Amz-Copy-Source-Range"); v != "" {
		br, ok, satisfiable := parseRange(v, src.Size)
		if !ok || !satisfiable || strings.HasPrefix(strings.TrimPrefix(v, "bytes="), "-") {
			return &s3Error{Status: http.StatusBadRequest, Code: "InvalidArgument", Message: "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"}
		}
		off, length = br.start, br.end-br.start+1
	}
	if length > objects.MaxObjectSize {
		return &s3Error{Status: http.StatusBadRequest, Code: "EntityTooLarge", Message: "Your proposed upload exceeds the maximum allowed size"}
	}
	seg, sum, err := a.copyFrom(src, off, length)
	if err != nil {
		return err
	}
	p := &objects.Part{Number: n, Size: length, ETag: sum, Segment: seg}
	if err := a.st.PutPart(r.Context(), u, p); err != nil {
		a.st.Files().Remove(seg)
		return err
	}
	return writeXML(w, http.StatusOK, struct {
		XMLName      xml.Name `xml:"CopyPartResult"`
		NS           string   `xml:"xmlns,attr"`
		ETag         string   `xml:"ETag"`
		LastModified string   `xml:"LastModified"`
	}{NS: xmlns, ETag: `"` + p.ETag + `"`, LastModified: isoTime(p.Modified)})
}

func (a *API) completeUpload(w http.ResponseWriter, r *http.Request, t target, q url.Values) error {
	if err := a.allow(r, "s3:PutObject", objectARN(t.bucket, t.key)); err != nil {
		return err
	}
	u, err := a.st.Upload(t.bucket, t.key, q.Get("uploadId"))
	if err != nil {
		return err
	}
	var in struct {
		Parts []struct {
			Number int    `xml:"PartNumber"`
			ETag   string `xml:"ETag"`
		} `xml:"Part"`
	}
	if err := readXML(r, 4<<20, &in); err != nil {
		return err
	}
	chosen := make([]objects.Chosen, len(in.Parts))
	for i, p := range in.Parts {
		chosen[i] = objects.Chosen{Number: p.Number, ETag: p.ETag}
	}
	o := &objects.Object{Bucket: u.Bucket, Key: u.Key, Headers: u.Headers}
	// The object's checksum is computed before it is recorded, from the
	// parts' (COMPOSITE) or their bytes (FULL_OBJECT).
	parts, err := a.st.Parts(r.Context(), u.ID)
	if err != nil {
		return err
	}
	if u.Algorithm != "" {
		sum, err := a.uploadChecksum(u, parts, chosen)
		if err != nil {
			return err
		}
		if want := r.Header.Get(checksumHeader(u.Algorithm)); want != "" && want != sum {
			return errBadDigest("The " + u.Algorithm + " you specified did not match the calculated checksum.")
		}
		o.Checksums, o.ChecksumType = map[string]string{u.Algorithm: sum}, u.Type
	}
	if _, err := a.st.Complete(r.Context(), u, chosen, o); err != nil {
		return err
	}
	a.notify(r, "ObjectCreated:CompleteMultipartUpload", o)
	for alg, v := range o.Checksums {
		w.Header().Set(checksumHeader(alg), v)
	}
	return writeXML(w, http.StatusOK, struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		NS       string   `xml:"xmlns,attr"`
		Location string   `xml:"Location"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		ETag     string   `xml:"ETag"`
	}{NS: xmlns, Location: "/" + u.Bucket + "/" + u.Key, Bucket: u.Bucket, Key: u.Key, ETag: `"` + o.ETag + `"`})
}

// uploadChecksum is the object's checksum from its chosen parts: of the
// parts' checksums then -N (COMPOSITE), or of all the bytes (FULL_OBJECT,
// read back from the parts' files, which the page cache usually holds).
func (a *API) uploadChecksum(u *objects.Upload, parts []*objects.Part, chosen []objects.Chosen) (string, error) {
	byNum := map[int]*objects.Part{}
	for _, p := range parts {
		byNum[p.Number] = p
	}
	h := newHash(u.Algorithm)
	if u.Type == "COMPOSITE" {
		for _, c := range chosen {
			p := byNum[c.Number]
			if p == nil {
				return "", objects.ErrInvalidPart
			}
			raw, err := base64.StdEncoding.DecodeString(p.Checksums[u.Algorithm])
			if err != nil || len(raw) == 0 {
				return "", errInvalidRequest(fmt.Sprintf("The upload was created using a %s checksum. The complete request must include the checksum for each part. It was missing for part %d in the request.", u.Algorithm, c.Number))
			}
			h.Write(raw)
		}
		return base64.StdEncoding.EncodeToString(h.Sum(nil)) + "-" + strconv.Itoa(len(chosen)), nil
	}
	for _, c := range chosen {
		p := byNum[c.Number]
		if p == nil {
			return "", objects.ErrInvalidPart
		}
		f, err := a.st.Files().Open(p.Segment)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

func (a *API) abortUpload(w http.ResponseWriter, r *http.Request, t target, q url.Values) error {
	if err := a.allow(r, "s3:AbortMultipartUpload", objectARN(t.bucket, t.key)); err != nil {
		return err
	}
	u, err := a.st.Upload(t.bucket, t.key, q.Get("uploadId"))
	if err != nil {
		return err
	}
	if err := a.st.Abort(r.Context(), u); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listParts(w http.ResponseWriter, r *http.Request, t target, q url.Values) error {
	if err := a.allow(r, "s3:ListMultipartUploadParts", objectARN(t.bucket, t.key)); err != nil {
		return err
	}
	u, err := a.st.Upload(t.bucket, t.key, q.Get("uploadId"))
	if err != nil {
		return err
	}
	parts, err := a.st.Parts(r.Context(), u.ID)
	if err != nil {
		return err
	}
	max, err := maxParam(q, "max-parts")
	if err != nil {
		return err
	}
	marker, _ := strconv.Atoi(q.Get("part-number-marker"))
	type part struct {
		Number       int    `xml:"PartNumber"`
		LastModified string `xml:"LastModified"`
		ETag         string `xml:"ETag"`
		Size         int64  `xml:"Size"`
		CRC32        string `xml:"ChecksumCRC32,omitempty"`
		CRC32C       string `xml:"ChecksumCRC32C,omitempty"`
		CRC64NVME    string `xml:"ChecksumCRC64NVME,omitempty"`
		SHA1         string `xml:"ChecksumSHA1,omitempty"`
		SHA256       string `xml:"ChecksumSHA256,omitempty"`
	}
	out := struct {
		XMLName   xml.Name `xml:"ListPartsResult"`
		NS        string   `xml:"xmlns,attr"`
		Bucket    string   `xml:"Bucket"`
		Key       string   `xml:"Key"`
		UploadID  string   `xml:"UploadId"`
		Marker    int      `xml:"PartNumberMarker"`
		Next      int      `xml:"NextPartNumberMarker"`
		MaxParts  int      `xml:"MaxParts"`
		Truncated bool     `xml:"IsTruncated"`
		Algorithm string   `xml:"ChecksumAlgorithm,omitempty"`
		Type      string   `xml:"ChecksumType,omitempty"`
		Initiator owner    `xml:"Initiator"`
		Owner     owner    `xml:"Owner"`
		Storage   string   `xml:"StorageClass"`
		Parts     []part   `xml:"Part"`
	}{NS: xmlns, Bucket: u.Bucket, Key: u.Key, UploadID: u.ID, Marker: marker, MaxParts: max, Algorithm: u.Algorithm, Type: u.Type,
		Initiator: theOwner, Owner: theOwner, Storage: "STANDARD"}
	for _, p := range parts {
		if p.Number <= marker {
			continue
		}
		if len(out.Parts) == max {
			out.Truncated = true
			break
		}
		c := p.Checksums
		out.Parts = append(out.Parts, part{Number: p.Number, LastModified: isoTime(p.Modified), ETag: `"` + p.ETag + `"`, Size: p.Size,
			CRC32: c["CRC32"], CRC32C: c["CRC32C"], CRC64NVME: c["CRC64NVME"], SHA1: c["SHA1"], SHA256: c["SHA256"]})
		out.Next = p.Number
	}
	return writeXML(w, http.StatusOK, out)
}

func (a *API) listUploads(w http.ResponseWriter, r *http.Request, b string, q url.Values) error {
	if err := a.allow(r, "s3:ListBucketMultipartUploads", bucketARN(b)); err != nil {
		return err
	}
	if _, err := a.st.Bucket(b); err != nil {
		return err
	}
	max, err := maxParam(q, "max-uploads")
	if err != nil {
		return err
	}
	type upload struct {
		Key       string `xml:"Key"`
		UploadID  string `xml:"UploadId"`
		Initiated string `xml:"Initiated"`
		Initiator owner  `xml:"Initiator"`
		Owner     owner  `xml:"Owner"`
		Storage   string `xml:"StorageClass"`
	}
	keyMarker, idMarker := q.Get("key-marker"), q.Get("upload-id-marker")
	out := struct {
		XMLName    xml.Name `xml:"ListMultipartUploadsResult"`
		NS         string   `xml:"xmlns,attr"`
		Bucket     string   `xml:"Bucket"`
		KeyMarker  string   `xml:"KeyMarker"`
		IDMarker   string   `xml:"UploadIdMarker"`
		NextKey    string   `xml:"NextKeyMarker,omitempty"`
		NextID     string   `xml:"NextUploadIdMarker,omitempty"`
		Prefix     string   `xml:"Prefix"`
		MaxUploads int      `xml:"MaxUploads"`
		Truncated  bool     `xml:"IsTruncated"`
		Uploads    []upload `xml:"Upload"`
	}{NS: xmlns, Bucket: b, KeyMarker: keyMarker, IDMarker: idMarker, Prefix: q.Get("prefix"), MaxUploads: max}
	passed := keyMarker == ""
	for _, u := range a.st.Uploads(b, q.Get("prefix")) {
		if !passed {
			if u.Key < keyMarker || (u.Key == keyMarker && (idMarker == "" || u.ID != idMarker)) {
				continue
			}
			if u.Key == keyMarker && u.ID == idMarker {
				passed = true
				continue
			}
			passed = true
		}
		if len(out.Uploads) == max {
			out.Truncated = true
			break
		}
		out.Uploads = append(out.Uploads, upload{Key: u.Key, UploadID: u.ID, Initiated: isoTime(u.Initiated), Initiator: theOwner, Owner: theOwner, Storage: "STANDARD"})
		out.NextKey, out.NextID = u.Key, u.ID
	}
	if !out.Truncated {
		out.NextKey, out.NextID = "", ""
	}
	return writeXML(w, http.StatusOK, out)
}
