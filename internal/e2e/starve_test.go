package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func openFiles(t *testing.T, pid int) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestStalledConnections: a thousand connections from one source that
// send their headers and one byte of a 1 MB body, on a server with 2,048
// descriptors, neither starve a client from another address (healthz and
// invokes keep answering) nor hold their descriptors beyond the body's
// idle deadline.
func TestStalledConnections(t *testing.T) {
	s := startServer(t, "")
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(s.cmd.Process.Pid), "--nofile=2048:2048").CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	c := s.lambda()
	createFunction(t, c, "control", goZip(t), fnOpts{})
	invoke(t, c, "control", `{}`)
	baseline := openFiles(t, s.cmd.Process.Pid)

	// The flood comes from 127.0.0.2 (loopback too), the control client from 127.0.0.1.
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	var conns []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	var dialed atomic.Int32
	for range 1000 {
		wg.Go(func() {
			conn, err := dialer.Dial("tcp", s.addr)
			if err != nil {
				return
			}
			dialed.Add(1)
			fmt.Fprintf(conn, "POST /2015-03-31/functions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n{", s.addr)
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		})
	}
	wg.Wait()
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	var lat []time.Duration
	for i := range 20 {
		start := time.Now()
		resp, err := http.Get(s.Endpoint + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz during the flood: %v", err)
		}
		resp.Body.Close()
		if out := invoke(t, c, "control", fmt.Sprintf(`{"name":"c%d"}`, i)); out.FunctionError != nil {
			t.Fatalf("invoke during the flood: %s", out.Payload)
		}
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	during := openFiles(t, s.cmd.Process.Pid)
	t.Logf("%d stalled connections dialed; server descriptors %d before, %d during; control healthz+invoke p50 %v, max %v",
		dialed.Load(), baseline, during, lat[len(lat)/2], lat[len(lat)-1])
	if during > 2048-64 {
		t.Errorf("the flood took %d of the server's 2,048 descriptors", during)
	}
	// The stalled bodies are cut off: their descriptors come back.
	waitFor(t, 30*time.Second, "the stalled connections to be closed by the server", func() bool {
		return openFiles(t, s.cmd.Process.Pid) < baseline+32
	})
}

// TestLargeBodies: sixteen 66 MB CreateFunction bodies at once leave the
// server under 512 MB of memory, those not taken are told to retry, and
// the server's size comes back down afterwards. Memory is measured on a
// server built without the race detector, whose shadow memory would
// swamp the figure and is never given back.
func TestLargeBodies(t *testing.T) {
	s := startPlainServer(t)
	noise := make([]byte, 40<<20) // incompressible: with the bootstrap, a zip of about 48 MB
	if _, err := rand.Read(noise); err != nil {
		t.Fatal(err)
	}
	zip := makeZip(t, map[string][]byte{"bootstrap": goBootstrap, "noise": noise})
	noise = nil
	enc := base64.StdEncoding.EncodeToString(zip)
	zip = nil
	before := serverRSS(t, s)
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if v := int64(serverRSS(t, s)); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	codes := make([]int, 16)
	for i := range codes {
		wg.Go(func() {
			// One copy of the encoded zip serves every body.
			head := `{"FunctionName":"big-` + strconv.Itoa(i) + `","Runtime":"provided.al2023","Handler":"bootstrap","Role":"arn:aws:iam::000000000000:role/x","Code":{"ZipFile":"`
			tail := `"}}`
			req, err := http.NewRequest("POST", s.Endpoint+"/2015-03-31/functions", io.MultiReader(strings.NewReader(head), strings.NewReader(enc), strings.NewReader(tail)))
			if err != nil {
				t.Error(err)
				return
			}
			req.ContentLength = int64(len(head) + len(enc) + len(tail))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// A refused body is not read: the server answers 503 and
				// closes, and a client still writing may see the reset
				// before the answer (SDKs retry either).
				if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
					codes[i] = 503
					return
				}
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
			if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled
	created, refused := 0, 0
	for _, code := range codes {
		switch code {
		case 201:
			created++
		case 503:
			refused++
		default:
			t.Errorf("CreateFunction of 66 MB answered %d", code)
		}
	}
	limit := int64(512 << 20)
	t.Logf("16 bodies of %d MB: %d created, %d told to retry; server memory %d MB before, peak %d MB",
		len(enc)>>20, created, refused, before>>20, peak.Load()>>20)
	if created == 0 {
		t.Error("no CreateFunction got through")
	}
	if peak.Load() > limit {
		t.Errorf("server memory peaked at %d MB", peak.Load()>>20)
	}
	waitFor(t, 30*time.Second, "the server's memory to come back down", func() bool {
		return int64(serverRSS(t, s)) < int64(before)+96<<20
	})
	t.Logf("server memory after: %d MB", serverRSS(t, s)>>20)
}
