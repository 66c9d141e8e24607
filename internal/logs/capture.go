package logs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	tailBytes = 4096
	maxLine   = 256 << 10
)

// Capture reads one instance's stdout and stderr (one pipe, so their order
// is kept) and routes each line to the sink and to the tail of the
// invocation in progress.
type Capture struct {
	st   Stream
	f    Format
	sink *Sink
	r, w *os.File
	done chan struct{}

	mu      sync.Mutex
	partial []byte
	tail    []byte
	reqID   string        // the invocation in progress, or the last
	shared  bool          // several invocations at once: lines name their own
	routed  chan struct{} // signalled after each routed chunk
}

// NewCapture opens the pipe of an instance's log stream; hand Writer to
// the process, then call Started.
func NewCapture(st Stream, f Format, sink *Sink) (*Capture, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("log pipe: %w", err)
	}
	c := &Capture{st: st, f: f, sink: sink, r: r, w: w, done: make(chan struct{}), routed: make(chan struct{}, 1)}
	go c.read()
	return c, nil
}

// Writer is the write end for the instance process.
func (c *Capture) Writer() *os.File { return c.w }

// Started closes the server's copy of the write end, so that the reader
// ends when every process of the instance has gone.
func (c *Capture) Started() { _ = c.w.Close() }

func (c *Capture) read() {
	defer close(c.done)
	buf := make([]byte, 64<<10)
	rc, err := c.r.SyscallConn()
	if err != nil {
		c.readPlain(buf)
		return
	}
	// Bytes leave the pipe only under mu, and are routed before it is let
	// go: Settle, which reads how much the pipe holds, never sees bytes
	// that are neither in the pipe nor routed.
	var rerr error
	for rerr == nil {
		routed := false
		err := rc.Read(func(fd uintptr) bool {
			c.mu.Lock()
			n, err := unix.Read(int(fd), buf)
			if n > 0 {
				c.route(buf[:n])
				routed = true
			}
			c.mu.Unlock()
			switch {
			case err == unix.EAGAIN || err == unix.EINTR:
				return false // wait until readable
			case err != nil:
				rerr = err
			case n == 0:
				rerr = io.EOF
			}
			return true
		})
		if err != nil && rerr == nil {
			rerr = err
		}
		if routed {
			select {
			case c.routed <- struct{}{}:
			default:
			}
		}
	}
	c.finish()
}

// readPlain reads a pipe the runtime's poller does not hold.
func (c *Capture) readPlain(buf []byte) {
	for {
		n, err := c.r.Read(buf)
		if n > 0 {
			c.mu.Lock()
			c.route(buf[:n])
			c.mu.Unlock()
			select {
			case c.routed <- struct{}{}:
			default:
			}
		}
		if err != nil {
			c.finish()
			return
		}
	}
}

// finish routes what is left once every writer has gone.
func (c *Capture) finish() {
	c.mu.Lock()
	if len(c.partial) > 0 {
		c.line(c.partial)
		c.partial = c.partial[:0]
	}
	c.mu.Unlock()
	_ = c.r.Close()
}

// route splits data into lines; called with mu held.
func (c *Capture) route(data []byte) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			c.partial = append(c.partial, data...)
			if len(c.partial) >= maxLine {
				c.line(c.partial)
				c.partial = c.partial[:0]
			}
			return
		}
		if len(c.partial) > 0 {
			c.partial = append(c.partial, data[:i]...)
			c.line(c.partial)
			c.partial = c.partial[:0]
		} else {
			c.line(data[:i])
		}
		data = data[i+1:]
	}
}

// Shared says the instance runs several invocations at once: a line is
// not the current invocation's but the one its JSON record names (the
// runtime clients log so in that mode), and START/END/REPORT carry their
// own.
func (c *Capture) Shared() {
	c.mu.Lock()
	c.shared = true
	c.reqID = ""
	c.mu.Unlock()
}

// line delivers one complete line of the instance's; called with mu held.
func (c *Capture) line(l []byte) {
	if c.f.keepApp(l) {
		id := c.reqID
		if c.shared {
			id = recordRequestID(l)
		}
		c.emit(l, id)
	}
}

// recordRequestID is the "requestId" of a JSON log record, "" if none.
func recordRequestID(l []byte) string {
	const key = `"requestId"`
	i := bytes.Index(l, []byte(key))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(l[i+len(key):], " ")
	if len(rest) == 0 || rest[0] != ':' {
		return ""
	}
	rest = bytes.TrimLeft(rest[1:], " ")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	rest = rest[1:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 64 {
		return ""
	}
	return string(rest[:j])
}

// SetStream names the log stream of a capture made before its function
// was known (a pre-started sandbox's); until then, lines are dropped.
func (c *Capture) SetStream(st Stream, f Format) {
	c.mu.Lock()
	c.st, c.f = st, f
	c.mu.Unlock()
}

// emit stores and tails a line of invocation reqID; called with mu held.
func (c *Capture) emit(l []byte, reqID string) {
	if c.st.Function == "" {
		return // a pre-started sandbox not given to a function yet
	}
	c.sink.Write(c.st, time.Now(), reqID, l)
	c.tail = append(c.tail, l...)
	c.tail = append(c.tail, '\n')
	if len(c.tail) > 4*tailBytes {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailBytes:]...)
	}
}

// platform writes a platform line: text, or in the JSON format the
// record, unless the system log level drops it (platform lines are INFO).
func (c *Capture) platform(text string, typ string, record map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.reqID
	if c.shared {
		id, _ = record["requestId"].(string)
	}
	if !c.f.JSON {
		c.emit([]byte(text), id)
		return
	}
	if typ == "" || (c.f.SysLevel != 0 && c.f.SysLevel > Info) {
		return
	}
	c.emit(platformRecord(time.Now(), typ, record), id)
}

// Platform writes a platform notice (a crash, a timeout, a cancellation)
// in the text format; the JSON format has it in platform.report.
func (c *Capture) Platform(l string) { c.platform(l, "", nil) }

// Begin starts invocation reqID: its tail, its START line.
func (c *Capture) Begin(reqID, version string) { c.begin(reqID, version, true) }

// BeginAfterInit starts the invocation whose cold start failed: its tail
// keeps what the init phase wrote.
func (c *Capture) BeginAfterInit(reqID, version string) { c.begin(reqID, version, false) }

func (c *Capture) begin(reqID, version string, fresh bool) {
	c.mu.Lock()
	if !c.shared {
		if fresh {
			c.tail = c.tail[:0]
		}
		c.reqID = reqID
	}
	c.mu.Unlock()
	c.platform("START RequestId: "+reqID+" Version: "+version, "platform.start", map[string]any{"requestId": reqID, "version": version})
}

// Report writes an invocation's END and REPORT lines (platform.report).
func (c *Capture) Report(r Report) {
	metrics := map[string]any{"durationMs": round2(ms(r.Duration)), "billedDurationMs": r.BilledMs, "memorySizeMB": r.MemoryMB, "maxMemoryUsedMB": r.MaxMemMB}
	if r.Cold {
		metrics["initDurationMs"] = round2(r.InitMs)
	}
	rec := map[string]any{"requestId": r.RequestID, "metrics": metrics, "status": r.Status}
	if r.ErrorType != "" {
		rec["errorType"] = r.ErrorType
	}
	c.platform("END RequestId: "+r.RequestID, "", nil)
	c.platform(reportText(r), "platform.report", rec)
}

// InitReport writes the report of a failed init phase.
func (c *Capture) InitReport(d time.Duration, errorType string) {
	text := "INIT_REPORT Init Duration: " + strconv.FormatFloat(ms(d), 'f', 2, 64) + " ms\tPhase: init\tStatus: error\tError Type: " + errorType
	c.platform(text, "platform.initReport", map[string]any{"initializationType": "on-demand", "phase": "init", "status": "error", "errorType": errorType,
		"metrics": map[string]any{"durationMs": round2(ms(d))}})
}

// Settle waits (briefly) until everything the instance wrote before now
// has been routed, so output printed before a response lands in that
// invocation's log rather than the next one's.
func (c *Capture) Settle() {
	c.mu.Lock()
	shared := c.shared
	c.mu.Unlock()
	if shared {
		return // lines name their invocation; none waits for another's
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for {
		n := c.unread()
		c.mu.Lock()
		idle := n == 0
		if idle && len(c.partial) > 0 {
			c.line(c.partial)
			c.partial = c.partial[:0]
		}
		c.mu.Unlock()
		if idle || time.Now().After(deadline) {
			return
		}
		select {
		case <-c.routed:
		case <-c.done:
			return
		case <-time.After(time.Millisecond):
		}
	}
}

// Tail returns the last 4 KB of the log of invocation reqID: in a shared
// instance, of the recent lines that name it.
func (c *Capture) Tail(reqID string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tail
	if c.shared {
		var own []byte
		for line := range bytes.Lines(t) {
			if bytes.Contains(line, []byte(reqID)) {
				own = append(own, line...)
			}
		}
		t = own
	}
	if len(t) > tailBytes {
		t = t[len(t)-tailBytes:]
	}
	return append([]byte(nil), t...)
}

// unread is the number of bytes waiting in the pipe.
func (c *Capture) unread() int {
	rc, err := c.r.SyscallConn()
	if err != nil {
		return 0
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		v, err := unix.IoctlGetInt(int(fd), syscall.TIOCINQ)
		if err == nil {
			n = v
		}
	})
	return n
}

// Wait blocks until every writer of the pipe has gone and all is routed.
func (c *Capture) Wait() { <-c.done }

// Close stops reading; output still unread is discarded.
func (c *Capture) Close() {
	_ = c.r.Close()
	<-c.done
}
