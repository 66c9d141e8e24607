package logs

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Stream names where a log line belongs: a function's instance, which is
// a log stream of the function's log group, as on Lambda.
type Stream struct {
	Function string
	Instance string // hex id
	Name     string // YYYY/MM/DD/[VERSION]ID
}

func (s Stream) subject() string { return SubjectPrefix + s.Function + "." + StreamToken(s.Name) }

// StreamToken is a stream name as a subject token: YYYYMMDD-VERSION-ID
// (no dots, slashes or brackets); StreamName turns it back.
func StreamToken(name string) string {
	date, rest, ok := strings.Cut(name, "/[")
	ver, id, ok2 := strings.Cut(rest, "]")
	if !ok || !ok2 {
		return strings.NewReplacer(".", "_", "*", "_", ">", "_", " ", "_").Replace(name)
	}
	return strings.ReplaceAll(date, "/", "") + "-" + ver + "-" + id
}

// StreamName is the stream name of a subject token.
func StreamName(token string) string {
	date, rest, ok := strings.Cut(token, "-")
	ver, id, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 || len(date) != 8 {
		return token
	}
	return date[:4] + "/" + date[4:6] + "/" + date[6:] + "/[" + ver + "]" + id
}

// Subjects of the logs stream: stratus.logs.FUNCTION.INSTANCE, each
// message a batch of one instance's lines, named in HeaderStream.
const (
	SubjectPrefix = "stratus.logs."
	HeaderStream  = "Stratus-Log-Stream"
)

// Subject is the filter of all of a function's log lines.
func Subject(fn string) string { return SubjectPrefix + fn + ".>" }

// legacySubject held a function's lines before they had streams and times.
func legacySubject(fn string) string { return SubjectPrefix + fn }

// Subjects are the filters that read all of fn's log, old lines too.
func Subjects(fn string) []string { return []string{Subject(fn), legacySubject(fn)} }

// Event is one line of a function's log.
type Event struct {
	Time      time.Time
	RequestID string // the invocation it was written during, "" outside any
	Stream    string
	Message   string
	// Seq and Index place it in the store: message sequence and line.
	Seq   uint64
	Index int
}

// appendEvent encodes a line as stored: "UNIXMS\tREQUESTID\tLINE\n".
func appendEvent(b []byte, t time.Time, reqID string, line []byte) []byte {
	b = strconv.AppendInt(b, t.UnixMilli(), 10)
	b = append(b, '\t')
	b = append(b, reqID...)
	b = append(b, '\t')
	b = append(b, line...)
	return append(b, '\n')
}

// Decode reads the events of one stored message (subject, header, body,
// the store's time and sequence). Messages written before lines carried
// their own time and request id take the message's.
func Decode(subject string, h nats.Header, data []byte, stored time.Time, seq uint64) []Event {
	stream := h.Get(HeaderStream)
	var out []Event
	i := 0
	for len(data) > 0 {
		line := data
		if n := bytes.IndexByte(data, '\n'); n >= 0 {
			line, data = data[:n], data[n+1:]
		} else {
			data = nil
		}
		ev := Event{Time: stored, Stream: stream, Seq: seq, Index: i}
		i++
		if stream == "" { // a legacy batch: bare lines
			ev.Message = string(line)
			out = append(out, ev)
			continue
		}
		ts, rest, ok1 := bytes.Cut(line, []byte{'\t'})
		rid, msg, ok2 := bytes.Cut(rest, []byte{'\t'})
		ms, err := strconv.ParseInt(string(ts), 10, 64)
		if !ok1 || !ok2 || err != nil {
			ev.Message = string(line)
		} else {
			ev.Time, ev.RequestID, ev.Message = time.UnixMilli(ms), string(rid), string(msg)
		}
		out = append(out, ev)
	}
	return out
}

func streamHeader(st Stream) nats.Header {
	return nats.Header{HeaderStream: []string{st.Name}}
}
