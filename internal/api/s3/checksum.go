package s3

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"net/http"
	"strings"
)

// The checksum algorithms S3 takes, as they are named on the wire.
var algorithms = []string{"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"}

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	// CRC-64/NVME, in the reflected form hash/crc64 takes.
	nvme = crc64.MakeTable(0x9a6c9329ac4bc9b5)
)

func newHash(alg string) hash.Hash {
	switch alg {
	case "CRC32":
		return crc32.NewIEEE()
	case "CRC32C":
		return crc32.New(castagnoli)
	case "CRC64NVME":
		return crc64.New(nvme)
	case "SHA1":
		return sha1.New()
	case "SHA256":
		return sha256.New()
	}
	return nil
}

func checksumHeader(alg string) string { return "X-Amz-Checksum-" + strings.ToLower(alg) }

func validAlgorithm(alg string) bool {
	for _, a := range algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

// expected are the checksums a request declares: a value in a header, or
// an algorithm whose value comes in the trailer (empty value).
type expected map[string]string

// declared reads the checksums a PUT names, and the algorithm a client
// asks for with no value (x-amz-sdk-checksum-algorithm), which the
// server then computes and stores.
func declared(h http.Header) (expected, *s3Error) {
	e := expected{}
	for _, alg := range algorithms {
		if v := h.Get(checksumHeader(alg)); v != "" {
			e[alg] = v
		}
	}
	for _, t := range strings.Split(h.Get("X-Amz-Trailer"), ",") {
		t = strings.TrimSpace(strings.ToLower(t))
		if t == "" {
			continue
		}
		alg, ok := strings.CutPrefix(t, "x-amz-checksum-")
		alg = strings.ToUpper(alg)
		if !ok || !validAlgorithm(alg) {
			return nil, errInvalidArgument("The trailer " + t + " is not a checksum S3 supports.")
		}
		e[alg] = ""
	}
	if alg := strings.ToUpper(h.Get("X-Amz-Sdk-Checksum-Algorithm")); alg != "" {
		if !validAlgorithm(alg) {
			return nil, errInvalidArgument("Checksum algorithm " + alg + " is not supported.")
		}
		if _, ok := e[alg]; !ok {
			e[alg] = ""
		}
	}
	if len(e) > 1 {
		n := 0
		for _, v := range e {
			if v != "" {
				n++
			}
		}
		if n > 1 {
			return nil, errInvalidRequest("Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")
		}
	}
	return e, nil
}

// hashers computes, as bytes go by, MD5 for the ETag and each checksum.
type hashers struct {
	md5  hash.Hash
	sha  hash.Hash // the payload's SHA-256 when the signature names one
	sums map[string]hash.Hash
}

func (h *hashers) Write(p []byte) (int, error) {
	h.md5.Write(p)
	if h.sha != nil {
		h.sha.Write(p)
	}
	for _, s := range h.sums {
		s.Write(p)
	}
	return len(p), nil
}

func b64(h hash.Hash) string { return base64.StdEncoding.EncodeToString(h.Sum(nil)) }
