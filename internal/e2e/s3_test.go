package e2e

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// s3 is an S3 client as applications build one: the default
// configuration (which sends the SDK's default checksums), path-style
// addressing as any S3-compatible store needs.
func (s *server) s3(t testing.TB) *s3.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(s.creds()),
		config.WithBaseEndpoint(s.Endpoint), config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
}

// apiCode is the error code of an S3 call's error ("" for none).
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestS3GoSDK drives the S3 API with aws-sdk-go-v2: buckets, objects with
// metadata, checksums, ranges and conditionals, bad digests that store
// nothing, copies, listings over thousands of keys, deletes, multipart
// uploads and their rules, presigned URLs, and the limits.
func TestS3GoSDK(t *testing.T) {
	s := startServer(t, "")
	c := s.s3(t)
	ctx := context.Background()
	check := func(what string, err error, want string) {
		t.Helper()
		if got := apiCode(err); got != want {
			t.Errorf("%s: got %q (%v), want %q", what, got, err, want)
		}
	}

	// Buckets.
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("data")})
	check("create bucket", err, "")
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("data")})
	check("create a bucket we own again in us-east-1", err, "")
	for _, bad := range []string{"ab", "Upper", "has_underscore", "192.168.1.1", "xn--punycode", "ends-", "a..b", strings.Repeat("a", 64)} {
		_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bad)})
		check("create bucket "+bad, err, "InvalidBucketName")
	}
	// Buckets named as other APIs' paths are told apart by their signature.
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("2015-03-31")})
	check("create bucket 2015-03-31", err, "")
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("2015-03-31"), Key: aws.String("functions/x/invocations"), Body: strings.NewReader("not lambda")})
	check("put into bucket 2015-03-31", err, "")
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("nope")}); err == nil {
		t.Error("head of a missing bucket succeeded")
	}
	lb, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 2 {
		t.Errorf("list buckets: %v %v", lb, err)
	}
	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("data")})
	if err != nil || loc.LocationConstraint != "" {
		t.Errorf("location: %v %v", loc, err)
	}

	// Objects, with metadata and the SDK's default checksum.
	body := randomBytes(100_000)
	put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), Body: bytes.NewReader(body),
		ContentType: aws.String("image/jpeg"), Metadata: map[string]string{"camera": "x100"}, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c})
	check("put", err, "")
	sum := md5.Sum(body)
	if put != nil && aws.ToString(put.ETag) != `"`+hex.EncodeToString(sum[:])+`"` {
		t.Errorf("ETag %s, want the MD5", aws.ToString(put.ETag))
	}
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), ChecksumMode: types.ChecksumModeEnabled})
	check("head", err, "")
	if head != nil && (aws.ToInt64(head.ContentLength) != int64(len(body)) || aws.ToString(head.ContentType) != "image/jpeg" || head.Metadata["camera"] != "x100" ||
		aws.ToString(head.ChecksumCRC32C) == "" || head.LastModified == nil) {
		t.Errorf("head: length %d type %s meta %v crc32c %q", aws.ToInt64(head.ContentLength), aws.ToString(head.ContentType), head.Metadata, aws.ToString(head.ChecksumCRC32C))
	}
	get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), ChecksumMode: types.ChecksumModeEnabled})
	check("get", err, "")
	if get != nil {
		got, _ := io.ReadAll(get.Body) // the SDK validates the checksum as it reads
		get.Body.Close()
		if !bytes.Equal(got, body) {
			t.Error("get returned other bytes")
		}
	}
	// Ranges.
	rg, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), Range: aws.String("bytes=10-19")})
	check("range", err, "")
	if rg != nil {
		got, _ := io.ReadAll(rg.Body)
		rg.Body.Close()
		if !bytes.Equal(got, body[10:20]) || aws.ToString(rg.ContentRange) != "bytes 10-19/100000" {
			t.Errorf("range: %d bytes, %s", len(got), aws.ToString(rg.ContentRange))
		}
	}
	rg, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), Range: aws.String("bytes=-5")})
	if err == nil {
		got, _ := io.ReadAll(rg.Body)
		rg.Body.Close()
		if !bytes.Equal(got, body[len(body)-5:]) {
			t.Error("suffix range: other bytes")
		}
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), Range: aws.String("bytes=200000-")})
	check("range past the end", err, "InvalidRange")
	// Conditionals.
	etag := aws.ToString(put.ETag)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), IfNoneMatch: aws.String(etag)})
	check("if-none-match the etag", err, "NotModified")
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), IfMatch: aws.String(`"0000"`)})
	check("if-match another etag", err, "PreconditionFailed")
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), IfModifiedSince: aws.Time(time.Now().Add(time.Hour))})
	check("if-modified-since the future", err, "NotModified")
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), IfUnmodifiedSince: aws.Time(time.Now().Add(-time.Hour))})
	check("if-unmodified-since the past", err, "PreconditionFailed")
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")})
	check("conditional write over an object", err, "PreconditionFailed")
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("new-only"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")})
	check("conditional write of a new key", err, "")
	// Response overrides.
	ov, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("new-only"), ResponseContentType: aws.String("text/plain"), ResponseContentDisposition: aws.String("attachment")})
	if err != nil || aws.ToString(ov.ContentType) != "text/plain" || aws.ToString(ov.ContentDisposition) != "attachment" {
		t.Errorf("response overrides: %v", err)
	} else {
		ov.Body.Close()
	}

	// Bad digests store nothing.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("bad-md5"), Body: strings.NewReader("hello"),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(make([]byte, 16)))})
	check("wrong Content-MD5", err, "BadDigest")
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("bad-crc"), Body: strings.NewReader("hello"),
		ChecksumCRC32: aws.String("AAAAAA==")})
	check("wrong CRC32", err, "BadDigest")
	for _, k := range []string{"bad-md5", "bad-crc"} {
		_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String(k)})
		check("head of a refused upload "+k, err, "NotFound")
	}

	// Limits.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String(strings.Repeat("k", 1024)), Body: strings.NewReader("x")})
	check("a 1,024-byte key", err, "")
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String(strings.Repeat("k", 1025)), Body: strings.NewReader("x")})
	check("a 1,025-byte key", err, "KeyTooLongError")
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("meta"), Body: strings.NewReader("x"),
		Metadata: map[string]string{"big": strings.Repeat("m", 2100)}})
	check("2 KB of metadata", err, "MetadataTooLarge")

	// Copies.
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("data"), Key: aws.String("copy"), CopySource: aws.String("data/dir/photo one.jpg")})
	check("copy", err, "")
	cp, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String("copy")})
	if err != nil || cp.Metadata["camera"] != "x100" || aws.ToString(cp.ETag) != etag {
		t.Errorf("copy keeps metadata and etag: %v %v", cp, err)
	}
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("data"), Key: aws.String("copy"), CopySource: aws.String("data/copy"),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"camera": "other"}, ContentType: aws.String("image/png")})
	check("copy onto itself replacing metadata", err, "")
	cp, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("data"), Key: aws.String("copy")})
	if err != nil || cp.Metadata["camera"] != "other" || aws.ToString(cp.ContentType) != "image/png" {
		t.Errorf("copy with REPLACE: %v %v", cp, err)
	}
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("data"), Key: aws.String("copy"), CopySource: aws.String("data/copy")})
	check("copy onto itself without changes", err, "InvalidRequest")

	// Listings over a few thousand keys.
	_, _ = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("many")})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	want := map[string]bool{}
	for i := range 2500 {
		k := fmt.Sprintf("logs/%02d/%04d.txt", i%25, i)
		if i%500 == 0 {
			k = fmt.Sprintf("top-%d", i)
		}
		want[k] = true
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("many"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
				t.Errorf("put %s: %v", k, err)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	pages := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("many"), MaxKeys: aws.Int32(700)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page.Contents {
			if seen[aws.ToString(o.Key)] {
				t.Errorf("key %s listed twice", aws.ToString(o.Key))
			}
			seen[aws.ToString(o.Key)] = true
		}
	}
	if len(seen) != len(want) || pages != 4 {
		t.Errorf("listed %d keys in %d pages, want %d in 4", len(seen), pages, len(want))
	}
	dl, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("many"), Delimiter: aws.String("/")})
	if err != nil || len(dl.CommonPrefixes) != 1 || aws.ToString(dl.CommonPrefixes[0].Prefix) != "logs/" || len(dl.Contents) != 5 {
		t.Errorf("delimiter at the top: %v %v", dl, err)
	}
	var prefixes []string
	pd := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("many"), Prefix: aws.String("logs/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(10)})
	for pd.HasMorePages() {
		page, err := pd.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, cp := range page.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
	}
	if len(prefixes) != 25 || prefixes[0] != "logs/00/" || prefixes[24] != "logs/24/" {
		t.Errorf("common prefixes across pages: %v", prefixes)
	}
	sa, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("many"), StartAfter: aws.String("top-1500"), EncodingType: types.EncodingTypeUrl})
	if err != nil || len(sa.Contents) != 2 || aws.ToString(sa.Contents[0].Key) != "top-2000" {
		t.Errorf("start-after: %v %v", sa, err)
	}
	v1, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: aws.String("many"), Prefix: aws.String("logs/03/"), MaxKeys: aws.Int32(50)})
	if err != nil || len(v1.Contents) != 50 || !aws.ToBool(v1.IsTruncated) {
		t.Errorf("list v1: %v %v", v1, err)
	}
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("many")})
	check("delete a bucket with objects", err, "BucketNotEmpty")
	var del []types.ObjectIdentifier
	for k := range want {
		if strings.HasPrefix(k, "logs/00/") {
			del = append(del, types.ObjectIdentifier{Key: aws.String(k)})
		}
	}
	do, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("many"), Delete: &types.Delete{Objects: del}})
	if err != nil || len(do.Deleted) != len(del) {
		t.Errorf("delete objects: %v %v", do, err)
	}
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("many"), Key: aws.String("top-0")})
	check("delete object", err, "")
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("many"), Key: aws.String("top-0")})
	check("delete a deleted object", err, "")

	// Multipart.
	mp, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("big"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{5 << 20, 5 << 20, 1 << 20}
	var whole []byte
	var parts []types.CompletedPart
	var md5s []byte
	for i, n := range sizes {
		b := randomBytes(n)
		whole = append(whole, b...)
		ps := md5.Sum(b)
		md5s = append(md5s, ps[:]...)
		up, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("data"), Key: aws.String("big"), UploadId: mp.UploadId, PartNumber: aws.Int32(int32(i + 1)),
			Body: bytes.NewReader(b), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: up.ETag, ChecksumCRC32: up.ChecksumCRC32})
	}
	lp, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("data"), Key: aws.String("big"), UploadId: mp.UploadId})
	if err != nil || len(lp.Parts) != 3 {
		t.Errorf("list parts: %v %v", lp, err)
	}
	lu, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("data")})
	if err != nil || len(lu.Uploads) != 1 {
		t.Errorf("list uploads: %v %v", lu, err)
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("big"), UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{parts[1], parts[0], parts[2]}}})
	check("parts out of order", err, "InvalidPartOrder")
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("big"), UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{parts[2], {PartNumber: aws.Int32(4), ETag: parts[0].ETag, ChecksumCRC32: parts[0].ChecksumCRC32}}}})
	if code := apiCode(err); code != "InvalidPart" && code != "EntityTooSmall" {
		t.Errorf("a part never uploaded: %v", err)
	}
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("big"), UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	check("complete", err, "")
	mdOfMD5s := md5.Sum(md5s)
	if done != nil && aws.ToString(done.ETag) != `"`+hex.EncodeToString(mdOfMD5s[:])+`-3"` {
		t.Errorf("multipart ETag %s", aws.ToString(done.ETag))
	}
	bg, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("big"), Range: aws.String(fmt.Sprintf("bytes=%d-%d", (5<<20)-10, (5<<20)+9))})
	if err == nil {
		got, _ := io.ReadAll(bg.Body)
		bg.Body.Close()
		if !bytes.Equal(got, whole[(5<<20)-10:(5<<20)+10]) {
			t.Error("a range across parts: other bytes")
		}
	} else {
		t.Error(err)
	}
	bg, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("big")})
	if err == nil {
		got, _ := io.ReadAll(bg.Body)
		bg.Body.Close()
		if !bytes.Equal(got, whole) {
			t.Error("multipart object: other bytes")
		}
	}
	// A multipart copy of ranges of that object.
	cu, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("copied")})
	if err != nil {
		t.Fatal(err)
	}
	var cparts []types.CompletedPart
	for i, rg := range []string{fmt.Sprintf("bytes=0-%d", (5<<20)-1), fmt.Sprintf("bytes=%d-%d", 5<<20, len(whole)-1)} {
		pc, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String("data"), Key: aws.String("copied"), UploadId: cu.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), CopySource: aws.String("data/big"), CopySourceRange: aws.String(rg)})
		if err != nil {
			t.Fatal(err)
		}
		cparts = append(cparts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: pc.CopyPartResult.ETag})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("copied"), UploadId: cu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: cparts}}); err != nil {
		t.Fatal(err)
	}
	if co, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("copied")}); err == nil {
		got, _ := io.ReadAll(co.Body)
		co.Body.Close()
		if !bytes.Equal(got, whole) {
			t.Error("an object made of part copies: other bytes")
		}
	} else {
		t.Error(err)
	}
	small, _ := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("small")})
	var sp []types.CompletedPart
	for i := range 2 {
		up, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("data"), Key: aws.String("small"), UploadId: small.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(randomBytes(1000))})
		if err != nil {
			t.Fatal(err)
		}
		sp = append(sp, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: up.ETag})
	}
	_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("small"), UploadId: small.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: sp}})
	check("a first part under 5 MiB", err, "EntityTooSmall")
	_, err = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("data"), Key: aws.String("small"), UploadId: small.UploadId})
	check("abort", err, "")
	_, err = c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("data"), Key: aws.String("small"), UploadId: small.UploadId})
	check("list parts of an aborted upload", err, "NoSuchUpload")
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("data"), Key: aws.String("small"), UploadId: aws.String("nope"), PartNumber: aws.Int32(1), Body: strings.NewReader("x")})
	check("upload a part to no upload", err, "NoSuchUpload")

	// Presigned URLs, fetched by a plain HTTP client.
	pc := s3.NewPresignClient(c)
	pg, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String("dir/photo one.jpg")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := plainClient.Get(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Errorf("presigned GET: %d, %d bytes", resp.StatusCode, len(got))
	}
	pp, err := pc.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String("presigned-put")}, s3.WithPresignExpires(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, pp.URL, strings.NewReader("put through a link"))
	resp, err = plainClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("presigned PUT: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	req, _ = http.NewRequest(http.MethodPut, strings.Replace(pp.URL, "presigned-put", "other-key", 1), strings.NewReader("x"))
	resp, err = plainClient.Do(req)
	if err != nil || resp.StatusCode != 403 {
		t.Errorf("a presigned URL for another key: %v %v", resp, err)
	}
	if resp != nil {
		resp.Body.Close()
	}
	// Unsigned requests are refused in S3's shape.
	resp, err = plainClient.Get(s.Endpoint + "/data/dir/photo%20one.jpg")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("unsigned GET: %d", resp.StatusCode)
		}
	}
}

// TestS3AcrossNodes: two nodes on one NATS see the same buckets and
// objects; bytes taken by one are read from the other.
func TestS3AcrossNodes(t *testing.T) {
	ns := startNATS(t)
	a := startServer(t, "", "--nats-url", ns.ClientURL())
	b := startServer(t, "", "--nats-url", ns.ClientURL())
	ca, cb := a.s3(t), b.s3(t)
	ctx := context.Background()
	if _, err := ca.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("shared")}); err != nil {
		t.Fatal(err)
	}
	body := randomBytes(3 << 20)
	if _, err := ca.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("shared"), Key: aws.String("from-a"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	var got []byte
	waitFor(t, 10*time.Second, "node B to see node A's object", func() bool {
		o, err := cb.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("from-a")})
		if err != nil {
			return false
		}
		defer o.Body.Close()
		got, _ = io.ReadAll(o.Body)
		return true
	})
	if !bytes.Equal(got, body) {
		t.Fatalf("node B read %d other bytes", len(got))
	}
	rg, err := cb.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("from-a"), Range: aws.String("bytes=1000-1999")})
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rg.Body)
	rg.Body.Close()
	if !bytes.Equal(part, body[1000:2000]) {
		t.Error("a range read on node B: other bytes")
	}
	if _, err := cb.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("shared"), Key: aws.String("from-a")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node A to see the delete", func() bool {
		_, err := ca.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("shared"), Key: aws.String("from-a")})
		return apiCode(err) == "NotFound"
	})
}

// TestS3DiskFull: on a full disk new objects are refused with 503 (and
// nothing half-written stays), the objects stored are intact, and uploads
// work again once there is room, without a restart.
func TestS3DiskFull(t *testing.T) {
	requireRoot(t)
	disk := filepath.Join(t.TempDir(), "disk")
	if err := os.MkdirAll(disk, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=300m"); err != nil {
		t.Fatalf("mount a small file system: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(disk, syscall.MNT_DETACH) })
	s := startServer(t, filepath.Join(disk, "data"))
	c := s.s3(t)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("full")}); err != nil {
		t.Fatal(err)
	}
	kept := randomBytes(2 << 20)
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String("kept"), Body: bytes.NewReader(kept)}); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(disk, "filler")
	fill(t, filler, 30<<20)
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String("refused"), Body: bytes.NewReader(randomBytes(20 << 20))})
	if httpStatus(err) != 503 || apiCode(err) != "ServiceUnavailable" {
		t.Fatalf("PutObject on a full disk: %v", err)
	}
	if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("full"), Key: aws.String("refused")}); apiCode(err) != "NotFound" {
		t.Errorf("a refused object is there: %v", err)
	}
	o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("full"), Key: aws.String("kept")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(o.Body)
	o.Body.Close()
	if !bytes.Equal(got, kept) {
		t.Error("a stored object changed on a full disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String("after"), Body: bytes.NewReader(randomBytes(20 << 20))}); err != nil {
		t.Errorf("PutObject once there is room again: %v", err)
	}
}
