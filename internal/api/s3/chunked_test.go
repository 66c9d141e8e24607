package s3

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stratus-faas/stratus/internal/objects"
)

func frame(chunks []string, trailer string) string {
	var b strings.Builder
	for _, c := range chunks {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(c), c)
	}
	b.WriteString("0\r\n")
	b.WriteString(trailer)
	b.WriteString("\r\n")
	return b.String()
}

func TestChunkedReader(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    string
		trailer map[string]string
		err     error
	}{
		{"chunks and a trailer", frame([]string{"hello ", "world"}, "x-amz-checksum-crc32:AAAAAA==\r\n"), "hello world", map[string]string{"x-amz-checksum-crc32": "AAAAAA=="}, nil},
		{"no trailer", frame([]string{"abc"}, ""), "abc", nil, nil},
		{"extensions ignored unsigned", "3;chunk-signature=00\r\nabc\r\n0;chunk-signature=00\r\n\r\n", "abc", nil, nil},
		{"size not hex", "zz\r\nabc\r\n0\r\n\r\n", "", nil, errFraming},
		{"short chunk", "5\r\nabc", "", nil, errFraming},
		{"missing CRLF after data", "3\r\nabcX\r\n0\r\n\r\n", "", nil, errFraming},
		{"oversized chunk", fmt.Sprintf("%x\r\n", maxChunk+1), "", nil, errOversized},
		{"trailer without colon", "0\r\nbroken\r\n\r\n", "", nil, errTrailer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChunkedReader(strings.NewReader(tt.body), nil)
			got, err := io.ReadAll(c)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if tt.err == nil && string(got) != tt.want {
				t.Errorf("got %q, want %q: the framing must never be part of the object", got, tt.want)
			}
			for k, v := range tt.trailer {
				if c.trailer.Get(k) != v {
					t.Errorf("trailer %s = %q", k, c.trailer.Get(k))
				}
			}
		})
	}
}

func FuzzChunkedReader(f *testing.F) {
	f.Add([]byte(frame([]string{"hello"}, "x-amz-checksum-crc32:AAAAAA==\r\n")))
	f.Add([]byte("0\r\n\r\n"))
	f.Add([]byte("ffffffffffffffff\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := io.ReadAll(io.LimitReader(newChunkedReader(bytes.NewReader(body), nil), 1<<20))
		if err == nil && len(got) > len(body) {
			t.Fatalf("decoded %d bytes out of a %d-byte body", len(got), len(body))
		}
	})
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		v               string
		size            int64
		want            byteRange
		ok, satisfiable bool
	}{
		{"bytes=0-9", 100, byteRange{0, 9}, true, true},
		{"bytes=90-", 100, byteRange{90, 99}, true, true},
		{"bytes=-10", 100, byteRange{90, 99}, true, true},
		{"bytes=-200", 100, byteRange{0, 99}, true, true},
		{"bytes=50-500", 100, byteRange{50, 99}, true, true},
		{"bytes=100-", 100, byteRange{}, true, false},
		{"bytes=0-0", 0, byteRange{}, true, false},
		{"bytes=5-1", 100, byteRange{}, false, false},
		{"bytes=0-1,5-6", 100, byteRange{}, false, false},
		{"items=0-1", 100, byteRange{}, false, false},
		{"bytes=-0", 100, byteRange{}, true, false},
	}
	for _, tt := range tests {
		got, ok, sat := parseRange(tt.v, tt.size)
		if ok != tt.ok || sat != tt.satisfiable || (sat && got != tt.want) {
			t.Errorf("parseRange(%q, %d) = %v %v %v, want %v %v %v", tt.v, tt.size, got, ok, sat, tt.want, tt.ok, tt.satisfiable)
		}
	}
}

func FuzzParseRange(f *testing.F) {
	f.Add("bytes=0-9", int64(100))
	f.Add("bytes=-5", int64(3))
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			return
		}
		r, ok, sat := parseRange(v, size)
		if ok && sat && (r.start < 0 || r.end >= size || r.start > r.end) {
			t.Fatalf("parseRange(%q, %d) = %v: outside the object", v, size, r)
		}
	})
}

func TestOverlaps(t *testing.T) {
	put := []string{"s3:ObjectCreated:Put"}
	all := []string{"s3:ObjectCreated:*"}
	del := []string{"s3:ObjectRemoved:*"}
	tests := []struct {
		a, b []string
		ap   string
		bp   string
		as   string
		bs   string
		want bool
	}{
		{put, all, "", "", "", "", true},
		{put, del, "", "", "", "", false},
		{all, all, "a/", "b/", "", "", false},
		{all, all, "a/", "a/b/", "", "", true},
		{all, all, "", "", ".jpg", ".png", false},
		{all, all, "", "", ".jpg", "x.jpg", true},
	}
	for i, tt := range tests {
		x := target2(tt.a, tt.ap, tt.as)
		y := target2(tt.b, tt.bp, tt.bs)
		if overlaps(x, y) != tt.want {
			t.Errorf("case %d: overlaps = %v", i, !tt.want)
		}
	}
}

func target2(events []string, prefix, suffix string) objects.Target {
	return objects.Target{Events: events, Prefix: prefix, Suffix: suffix}
}
