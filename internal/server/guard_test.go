package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: &guard{next: h}}
	go srv.Serve(newClientListener(ln))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestStalledBodyCutOff: a body that stops sending is cut off after
// bodyIdle and the client gets an answer; a body that arrives whole lets
// a long poll wait past bodyIdle.
func TestStalledBodyCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 10 s idle deadline; runs in the full suite")
	}
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			w.WriteHeader(400)
			return
		}
		time.Sleep(bodyIdle + time.Second) // a long poll
		w.WriteHeader(200)
	}))
	for _, tt := range []struct {
		name   string
		size   int
		status string
	}{{"stalled", 1000, "400"}, {"stalled large", 4 << 20, "400"}, {"whole, then a long poll", 1, "200"}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{", tt.size)
			_ = c.SetReadDeadline(time.Now().Add(bodyIdle + 5*time.Second))
			b := make([]byte, 64)
			n, err := c.Read(b)
			if err != nil || !strings.HasPrefix(string(b[:n]), "HTTP/1.1 "+tt.status) {
				t.Fatalf("answer %q %v", b[:n], err)
			}
		})
	}
}

func TestBodyBudget(t *testing.T) {
	release := make(chan struct{})
	var entered sync.WaitGroup
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered.Done()
		<-release
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	// Bodies of unknown length count as 70 MB: one fits the budget (four
	// times its size), the next is told to retry.
	post := func(size int) (*http.Response, error) {
		return http.Post("http://"+addr+"/", "application/json", io.LimitReader(zeros{}, int64(size)))
	}
	entered.Add(1)
	var wg sync.WaitGroup
	wg.Go(func() {
		if resp, err := post(70 << 20); err != nil || resp.StatusCode != 200 {
			t.Errorf("within the budget: %v %v", err, resp)
		}
	})
	entered.Wait()
	resp, err := post(70 << 20)
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the budget: %v %+v", err, resp)
	}
	// Small bodies of known length are not counted.
	entered.Add(1)
	go func() { entered.Wait(); close(release) }()
	if resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(strings.Repeat("x", 1000))); err != nil || resp.StatusCode != 200 {
		t.Fatalf("a small body: %v %v", err, resp)
	}
	wg.Wait()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
