package s3

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/stratus-faas/stratus/internal/auth"
)

// maxChunk bounds one chunk of an aws-chunked body (the SDKs send 64 KiB
// to 8 MiB): the framing cannot make the server hold more.
const maxChunk = 16 << 20

var (
	errFraming   = errors.New("the aws-chunked body is malformed")
	errChunkSig  = errors.New("a chunk's signature does not match")
	errTrailer   = errors.New("the trailer is malformed")
	errOversized = errors.New("a chunk is larger than allowed")
)

// chunkedReader reads the object out of an aws-chunked body: the chunks'
// data without their framing, each chunk's signature checked when the
// body is signed per chunk, and the trailing headers kept for the
// checksums they carry.
type chunkedReader struct {
	br      *bufio.Reader
	signer  *auth.ChunkSigner
	left    int64 // of the current chunk
	buf     []byte
	sig     string // of the current chunk, checked once it is whole
	done    bool
	trailer http.Header
	err     error
}

func newChunkedReader(body io.Reader, signer *auth.ChunkSigner) *chunkedReader {
	return &chunkedReader{br: bufio.NewReaderSize(body, 64<<10), signer: signer, trailer: http.Header{}}
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for {
		if c.done {
			return 0, io.EOF
		}
		if c.left > 0 {
			if c.signer != nil {
				// A signed chunk is given out only once it is whole and its
				// signature holds: nothing unverified reaches the object.
				if c.buf == nil {
					c.buf = make([]byte, c.left)
					if _, err := io.ReadFull(c.br, c.buf); err != nil {
						return 0, c.fail(errFraming)
					}
					if !c.signer.Chunk(c.buf, c.sig) {
						return 0, c.fail(errChunkSig)
					}
				}
				n := copy(p, c.buf[int64(len(c.buf))-c.left:])
				c.left -= int64(n)
				if c.left == 0 {
					c.buf = nil
					if err := c.crlf(); err != nil {
						return n, err
					}
				}
				return n, nil
			}
			if int64(len(p)) > c.left {
				p = p[:c.left]
			}
			n, err := c.br.Read(p)
			c.left -= int64(n)
			if err != nil && (err != io.EOF || c.left > 0) {
				return n, c.fail(errFraming)
			}
			if c.left == 0 {
				if err := c.crlf(); err != nil {
					return n, err
				}
			}
			return n, nil
		}
		if err := c.header(); err != nil {
			return 0, err
		}
	}
}

func (c *chunkedReader) fail(err error) error {
	c.err = err
	return err
}

func (c *chunkedReader) crlf() error {
	b := make([]byte, 2)
	if _, err := io.ReadFull(c.br, b); err != nil || b[0] != '\r' || b[1] != '\n' {
		return c.fail(errFraming)
	}
	return nil
}

func (c *chunkedReader) line() (string, error) {
	l, err := c.br.ReadSlice('\n')
	if err != nil {
		return "", c.fail(errFraming)
	}
	return strings.TrimRight(string(l), "\r\n"), nil
}

// header reads a chunk's header, and after the last chunk the trailer.
func (c *chunkedReader) header() error {
	l, err := c.line()
	if err != nil {
		return err
	}
	size, ext, _ := strings.Cut(l, ";")
	n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
	if err != nil || n < 0 {
		return c.fail(errFraming)
	}
	if n > maxChunk {
		return c.fail(errOversized)
	}
	c.sig = ""
	if ext != "" {
		k, v, _ := strings.Cut(ext, "=")
		if strings.TrimSpace(k) == "chunk-signature" {
			c.sig = strings.TrimSpace(v)
		}
	}
	if c.signer != nil && c.sig == "" {
		return c.fail(errChunkSig)
	}
	if n > 0 {
		c.left = n
		return nil
	}
	if c.signer != nil && !c.signer.Chunk(nil, c.sig) {
		return c.fail(errChunkSig)
	}
	return c.readTrailer()
}

func (c *chunkedReader) readTrailer() error {
	var signed bytes.Buffer
	trailerSig := ""
	for {
		l, err := c.line()
		if err != nil {
			// Some clients end the body right after the last chunk.
			if len(c.trailer) == 0 && errors.Is(err, errFraming) {
				c.err = nil
				break
			}
			return err
		}
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return c.fail(errTrailer)
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if k == "x-amz-trailer-signature" {
			trailerSig = v
			continue
		}
		c.trailer.Set(k, v)
		signed.WriteString(k + ":" + v + "\n")
	}
	if c.signer != nil && len(c.trailer) > 0 && !c.signer.Trailer(signed.Bytes(), trailerSig) {
		return c.fail(errChunkSig)
	}
	c.done = true
	return nil
}
