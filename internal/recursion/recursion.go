// Package recursion detects recursive loops as Lambda does: the X-Ray
// trace header an invocation carries (and AWS SDKs inside functions pass
// on in X-Amzn-Trace-Id, to SQS messages, S3 uploads and further invokes)
// counts in its Lineage field how often the event has passed through each
// function; past Limit passes through one function it is stopped there.
package recursion

import (
	"context"
	"hash/fnv"
	"strconv"
	"strings"
)

// Limit is how many times one event may run a function: Lambda stops
// the invocation after about 16.
const Limit = 16

// A function's recursive loop setting (PutFunctionRecursionConfig).
const (
	Terminate = "Terminate" // the default
	Allow     = "Allow"
)

// maxHeader bounds a trace header we parse; longer ones are not ours and
// start a new lineage.
const maxHeader = 1024

// maxEntries bounds the functions a lineage remembers; the oldest go.
const maxEntries = 8

// Stops reports whether an invocation of a function set to loop (Allow or
// Terminate) that the event has already run depth times is stopped.
func Stops(depth int, loop string) bool { return depth >= Limit && loop != Allow }

// key names a function in a lineage: 8 hex digits of its name's hash.
func key(fn string) string {
	h := fnv.New32a()
	h.Write([]byte(fn))
	const digits = "0123456789abcdef"
	v := h.Sum32()
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b)
}

// Depth is how many times the event of header has run fn.
func Depth(header, fn string) int {
	lin := lineage(header)
	if lin == "" {
		return 0
	}
	k := key(fn)
	for _, e := range strings.Split(lin, "|") {
		if h, n, ok := strings.Cut(e, ":"); ok && h == k {
			if v, err := strconv.Atoi(n); err == nil && v >= 0 {
				return v
			}
		}
	}
	return 0
}

// lineage is the Lineage field of a trace header.
func lineage(header string) string {
	if len(header) > maxHeader {
		return ""
	}
	for _, f := range strings.Split(header, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(f), "Lineage="); ok {
			return v
		}
	}
	return ""
}

// Next is header with one more run of fn counted, the other fields kept.
func Next(header, fn string) string {
	if len(header) > maxHeader {
		header = ""
	}
	k := key(fn)
	var fields []string
	var entries []string
	for _, f := range strings.Split(header, ";") {
		f = strings.TrimSpace(f)
		if v, ok := strings.CutPrefix(f, "Lineage="); ok {
			for _, e := range strings.Split(v, "|") {
				if h, n, ok := strings.Cut(e, ":"); ok && h != k && len(h) == 8 {
					if _, err := strconv.Atoi(n); err == nil {
						entries = append(entries, e)
					}
				}
			}
			continue
		}
		if f != "" {
			fields = append(fields, f)
		}
	}
	depth := min(Depth(header, fn)+1, 999)
	entries = append(entries, k+":"+strconv.Itoa(depth))
	if len(entries) > maxEntries {
		entries = entries[len(entries)-maxEntries:]
	}
	return strings.Join(append(fields, "Lineage="+strings.Join(entries, "|")), ";")
}

type ctxKey struct{}

// WithTrace carries a request's trace header to where it causes events.
func WithTrace(ctx context.Context, header string) context.Context {
	if header == "" {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, header)
}

// Trace is the trace header WithTrace put in ctx, "" if none.
func Trace(ctx context.Context) string {
	s, _ := ctx.Value(ctxKey{}).(string)
	return s
}
