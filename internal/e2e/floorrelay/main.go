// Command floorrelay is the floor of the Lambda model for the benchmarks:
// the least any platform that runs functions behind the Runtime API can
// do per request. It starts N copies of one function binary, each with a
// Runtime API of its own, and hands every HTTP request it receives to one
// of them that is waiting in its /next long poll, answering with what the
// function posts back. No sandbox, no logs, no metering, no limits.
//
//	floorrelay ADDR N BINARY
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

type call struct {
	id      string
	payload []byte
	answer  chan []byte
}

// worker is one function process and its Runtime API.
type worker struct {
	calls chan *call
	cur   *call // the call in flight; only its /next and /response touch it
}

var seq atomic.Int64

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: floorrelay ADDR N BINARY")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "N must be a positive number")
		os.Exit(2)
	}
	idle := make(chan *worker, n)
	for range n {
		if err := start(os.Args[3], idle); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	front := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		c := &call{id: strconv.FormatInt(seq.Add(1), 10), payload: body, answer: make(chan []byte, 1)}
		wk := <-idle
		wk.calls <- c
		out := <-c.answer
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	if err := http.ListenAndServe(os.Args[1], front); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// start runs one function process and serves its Runtime API.
func start(bin string, idle chan<- *worker) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	wk := &worker{calls: make(chan *call)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		idle <- wk
		c := <-wk.calls
		wk.cur = c
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", c.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:floor")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(c.payload)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c := wk.cur
		wk.cur = nil
		w.WriteHeader(http.StatusAccepted)
		if c != nil {
			c.answer <- b
		}
	})
	go func() { _ = http.Serve(ln, mux) }()
	cmd := exec.Command(bin)
	// The environment a function relies on, as Stratus gives it (the same
	// GOMAXPROCS for a 128 MB function), and nothing of the platform.
	cmd.Env = []string{
		"PATH=/usr/bin:/bin",
		"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME=floor",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"GOMAXPROCS=1",
		"TMPDIR=" + os.TempDir(),
	}
	cmd.Dir = os.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd.Start()
}
