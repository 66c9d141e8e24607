package server

import (
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// What a request body may cost the API listener. A stalled body holds a
// connection and a goroutine, and a large one its bytes several times over
// while it is decoded (a 66 MB CreateFunction body becomes the body, the
// decoded zip and its check), so both are bounded here, before any API
// handler sees the request.
const (
	// bodyIdle is how long a body may send nothing before it is cut off;
	// a slow upload that keeps sending is not.
	bodyIdle = 10 * time.Second
	// largeBody is the size from which a body counts against the budget.
	largeBody = 1 << 20
	// unknownBody is what a body of unknown length is counted as.
	unknownBody = 70 << 20
	// bodyBudget bounds the memory large bodies may hold at once, each
	// counted as four times its size (the body, the JSON decoder's work,
	// the decoded zip: measured about 3 for CreateFunction); over it, 503
	// with Retry-After.
	bodyBudget = 400 << 20
	bodyCost   = 4
)

// guard wraps the API handler with the body rules.
type guard struct {
	next http.Handler
	// streams: requests whose bodies go to disk as they arrive (S3's), not
	// into memory, and so do not count against the budget.
	streams func(*http.Request) bool

	held    atomic.Int64
	freeing atomic.Bool
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		g.next.ServeHTTP(w, r)
		return
	}
	rc := http.NewResponseController(w)
	body := &idleBody{ReadCloser: r.Body, rc: rc}
	body.extend(time.Now())
	r.Body = body
	size := r.ContentLength
	if size < 0 {
		size = unknownBody
	}
	if size >= largeBody && (g.streams == nil || !g.streams(r)) {
		cost := size * bodyCost
		// One body alone is always let in: the budget bounds many at once.
		if held := g.held.Add(cost); held > bodyBudget && held != cost {
			g.held.Add(-cost)
			w.Header().Set("Retry-After", "1")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Amzn-ErrorType", "ServiceException")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"Type":"Service","Message":"Stratus is receiving too many large requests at once; retry"}`)
			return
		}
		defer g.release(cost)
	}
	g.next.ServeHTTP(w, r)
}

// release returns a large body's cost; the last one out gives the memory
// the bodies held back to the system, so the server returns to its size.
func (g *guard) release(cost int64) {
	if g.held.Add(-cost) == 0 && g.freeing.CompareAndSwap(false, true) {
		go func() {
			defer g.freeing.Store(false)
			debug.FreeOSMemory()
		}()
	}
}

// idleBody cuts off a body that sends nothing for bodyIdle, and lifts the
// deadline once the body is read whole, so a long poll's connection is
// not taken for a dead one while it waits.
type idleBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	extended time.Time
}

func (b *idleBody) extend(now time.Time) {
	b.extended = now
	_ = b.rc.SetReadDeadline(now.Add(bodyIdle))
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// Whole: from now on the connection may wait (a long poll).
		_ = b.rc.SetReadDeadline(time.Time{})
		return n, err
	}
	if err != nil {
		return n, err // the deadline stays, so what follows fails fast too
	}
	// Extending costs a timer update: at most once a second.
	if now := time.Now(); now.Sub(b.extended) > time.Second {
		b.extend(now)
	}
	return n, err
}

// clientListener bounds the connections of a listener: in all, and per
// client address, from the server's open-file limit (read at each accept,
// so a limit lowered while running counts), so that one source opening
// connections it never uses cannot take the descriptors every other
// client and the instances need.
type clientListener struct {
	net.Listener

	mu    sync.Mutex
	open  int
	count map[string]int
}

func newClientListener(ln net.Listener) *clientListener {
	return &clientListener{Listener: ln, count: map[string]int{}}
}

// connLimits are a quarter of the open-file limit in all, half of that
// per client.
func connLimits() (total, perClient int) {
	limit := 1 << 20
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < uint64(limit) {
		limit = int(rl.Cur)
	}
	total = max(limit/4, 64)
	return total, max(total/2, 32)
}

func (l *clientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		total, perClient := connLimits()
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		l.mu.Lock()
		if l.open >= total || l.count[host] >= perClient {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.open++
		l.count[host]++
		l.mu.Unlock()
		return &clientConn{Conn: c, l: l, host: host}, nil
	}
}

func (l *clientListener) done(host string) {
	l.mu.Lock()
	l.open--
	if l.count[host]--; l.count[host] == 0 {
		delete(l.count, host)
	}
	l.mu.Unlock()
}

type clientConn struct {
	net.Conn
	l    *clientListener
	host string
	once sync.Once
}

func (c *clientConn) Close() error {
	c.once.Do(func() { c.l.done(c.host) })
	return c.Conn.Close()
}
