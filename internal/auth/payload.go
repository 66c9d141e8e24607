package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
)

// S3's payload hashes for bodies in aws-chunked framing.
const (
	StreamingSigned        = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingSignedTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	StreamingUnsigned      = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

// Payload says how the body of an S3 request, whose headers' signature
// has been verified, must be checked as it is read: S3 bodies go up to
// 5 GB and are never read whole to check them.
type Payload struct {
	// SHA256 is the hex digest the body must have; empty when unsigned.
	SHA256 string
	// Chunked: the body is in aws-chunked framing (Content-Encoding).
	Chunked bool
	// Chunks verifies each chunk's signature of a body signed per chunk;
	// nil for unsigned chunks.
	Chunks *ChunkSigner
}

// ChunkSigner verifies the chain of chunk signatures of a streaming
// upload: each chunk's signature covers its bytes and the signature
// before it, starting from the request's own.
type ChunkSigner struct {
	key   []byte
	time  string
	scope string
	prev  string
}

// Chunk checks the signature of the next chunk (data empty for the last).
func (c *ChunkSigner) Chunk(data []byte, sig string) bool {
	sum := sha256.Sum256(data)
	return c.next("AWS4-HMAC-SHA256-PAYLOAD", emptySHA256+"\n"+hex.EncodeToString(sum[:]), sig)
}

// Trailer checks the signature of the trailing headers, as sent (each
// "name:value\n").
func (c *ChunkSigner) Trailer(headers []byte, sig string) bool {
	sum := sha256.Sum256(headers)
	return c.next("AWS4-HMAC-SHA256-TRAILER", hex.EncodeToString(sum[:]), sig)
}

func (c *ChunkSigner) next(alg, tail, sig string) bool {
	toSign := alg + "\n" + c.time + "\n" + c.scope + "\n" + c.prev + "\n" + tail
	want := hmacSHA256(c.key, []byte(toSign))
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(want, got) {
		return false
	}
	c.prev = sig
	return true
}

const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// s3Payload is the check an S3 request's body needs, once the signature
// over its headers (which name hash) has been verified.
func s3Payload(r *http.Request, s *Signature, secret, hash string) (*Payload, bool) {
	chunked := strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") || strings.HasPrefix(hash, "STREAMING-")
	switch {
	case hash == StreamingSigned || hash == StreamingSignedTrailer:
		return &Payload{Chunked: true, Chunks: &ChunkSigner{
			key:   signingKey(secret, s.Date, s.Region, s.Service),
			time:  s.Time.Format(amzDateFormat),
			scope: s.Date + "/" + s.Region + "/" + s.Service + "/aws4_request",
			prev:  s.Signature,
		}}, true
	case hash == StreamingUnsigned || hash == UnsignedPayload:
		return &Payload{Chunked: chunked}, true
	case len(hash) == 64 && strings.Trim(strings.ToLower(hash), "0123456789abcdef") == "":
		return &Payload{SHA256: strings.ToLower(hash), Chunked: chunked}, true
	}
	return nil, false
}
