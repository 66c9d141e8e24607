package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"sync"
)

// instanceAPI serves the API inside instances' own networks, on the
// listeners the sandbox makes there, with the same handler as the API
// listener. Instances may start before that handler exists (provisioned
// concurrency at start): their listeners wait, their connections queued.
type instanceAPI struct {
	mu      sync.Mutex
	srv     *http.Server
	tls     *tls.Config
	waiting []net.Listener
	stopped bool
	serving sync.WaitGroup
}

func (a *instanceAPI) serve(ln net.Listener) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.stopped:
		_ = ln.Close()
	case a.srv == nil:
		a.waiting = append(a.waiting, ln)
	default:
		a.start(ln)
	}
}

func (a *instanceAPI) start(ln net.Listener) {
	if a.tls != nil {
		ln = tls.NewListener(ln, a.tls)
	}
	// Serve returns when the instance's listener closes, or at shutdown.
	a.serving.Go(func() { _ = a.srv.Serve(ln) })
}

// run starts serving, with srv, what waits and what comes.
func (a *instanceAPI) run(srv *http.Server, cfg *tls.Config) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.srv, a.tls = srv, cfg
	for _, ln := range a.waiting {
		a.start(ln)
	}
	a.waiting = nil
}

// stop waits for the serving goroutines, which end with the server's
// shutdown or their instances; listeners never served are closed.
func (a *instanceAPI) stop() {
	a.mu.Lock()
	a.stopped = true
	for _, ln := range a.waiting {
		_ = ln.Close()
	}
	a.waiting = nil
	a.mu.Unlock()
	a.serving.Wait()
}

// instanceEndpoint is the API's address as instances are given it: an
// unspecified listen address is reached on loopback.
func instanceEndpoint(scheme string, api netip.AddrPort) string {
	if api.Addr().IsUnspecified() {
		api = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), api.Port())
	}
	return scheme + api.String()
}
