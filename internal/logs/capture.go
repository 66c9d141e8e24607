package logs

import (
	"bytes"
	"fmt"
	"os"
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
	fn   string
	sink *Sink
	r, w *os.File
	done chan struct{}

	mu      sync.Mutex
	partial []byte
	tail    []byte
	busy    bool          // the reader holds bytes it has not routed yet
	routed  chan struct{} // signalled after each routed chunk
}

// NewCapture opens the pipe; hand Writer to the process, then call Started.
func NewCapture(fn string, sink *Sink) (*Capture, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("log pipe: %w", err)
	}
	c := &Capture{fn: fn, sink: sink, r: r, w: w, done: make(chan struct{}), routed: make(chan struct{}, 1)}
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
	for {
		n, err := c.r.Read(buf)
		if n > 0 {
			c.mu.Lock()
			c.busy = true
			c.route(buf[:n])
			c.busy = false
			c.mu.Unlock()
			select {
			case c.routed <- struct{}{}:
			default:
			}
		}
		if err != nil {
			c.mu.Lock()
			if len(c.partial) > 0 {
				c.line(c.partial)
				c.partial = c.partial[:0]
			}
			c.mu.Unlock()
			_ = c.r.Close()
			return
		}
	}
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

// line delivers one complete line; called with mu held.
func (c *Capture) line(l []byte) {
	c.sink.Write(c.fn, l)
	c.tail = append(c.tail, l...)
	c.tail = append(c.tail, '\n')
	if len(c.tail) > 4*tailBytes {
		c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailBytes:]...)
	}
}

// Platform writes a line of the platform's own (START, END, REPORT).
func (c *Capture) Platform(l string) {
	c.mu.Lock()
	c.line([]byte(l))
	c.mu.Unlock()
}

// Begin starts a new invocation's tail.
func (c *Capture) Begin() {
	c.mu.Lock()
	c.tail = c.tail[:0]
	c.mu.Unlock()
}

// Settle waits (briefly) until everything the instance wrote before now
// has been routed, so output printed before a response lands in that
// invocation's log rather than the next one's.
func (c *Capture) Settle() {
	deadline := time.Now().Add(50 * time.Millisecond)
	for {
		n := c.unread()
		c.mu.Lock()
		idle := n == 0 && !c.busy
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

// Tail returns the last 4 KB of the current invocation's log.
func (c *Capture) Tail() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tail
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
