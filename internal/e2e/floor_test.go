package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var (
	floorOnce sync.Once
	floorBin  string
	floorErr  error
)

// startFloor runs the floor relay (see floorrelay) over n copies of the
// Go example function and returns its URL.
func startFloor(b *testing.B, n int) (url string, pid int) {
	floorOnce.Do(func() {
		floorBin = filepath.Join(binDir, "floorrelay")
		floorErr = goBuildPlain(floorBin, "./internal/e2e/floorrelay")
	})
	if floorErr != nil {
		b.Fatal(floorErr)
	}
	addr := freeAddr(b)
	cmd := exec.Command(floorBin, addr, strconv.Itoa(n), filepath.Join(binDir, "bootstrap"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url = "http://" + addr + "/"
	waitFor(b, 10*time.Second, "floor relay", func() bool {
		resp, err := plainClient.Post(url, "application/json", bytes.NewReader([]byte(benchBody)))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return url, cmd.Process.Pid
}

// target is one server under load in a benchmark.
type target struct {
	name, url string
	signed    bool // a Stratus API: requests carry a signature
	pid       int  // the server process, whose CPU per request is counted; 0: not counted
}

// measure loads t for d with conc connections: with wrk when it is on
// PATH (one thread, as the figures were taken), else with the Go
// load client.
func measure(b *testing.B, t target, conc int, d time.Duration) loadResult {
	var cpu0 int64
	if t.pid != 0 {
		cpu0 = procCPU(b, t.pid)
	}
	var r loadResult
	if _, err := exec.LookPath("wrk"); err != nil {
		r = load(t.url, conc, d)
	} else {
		r = wrk(b, t, conc, d)
	}
	if t.pid != 0 && r.rps > 0 {
		ticks := float64(procCPU(b, t.pid) - cpu0)
		r.cpuPerReq = time.Duration(ticks * float64(time.Second) / clockTicks / (r.rps * d.Seconds()))
	}
	return r
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's CPU times.
const clockTicks = 100

// wrk runs wrk against t. A Stratus API gets one request signed ahead:
// a signature stays valid for every identical request for minutes, and
// the server verifies it on each.
func wrk(b *testing.B, t target, conc int, d time.Duration) loadResult {
	var hdr strings.Builder
	if t.signed {
		r, _ := http.NewRequest("POST", t.url, bytes.NewReader([]byte(benchBody)))
		r.Header.Set("Content-Type", "application/json")
		v, ok := rootKeys.Load(r.URL.Host)
		if !ok {
			b.Fatalf("no keys for %s", r.URL.Host)
		}
		sum := sha256.Sum256([]byte(benchBody))
		if err := v4.NewSigner().SignHTTP(b.Context(), v.(aws.Credentials), r, hex.EncodeToString(sum[:]), "lambda", "us-east-1", time.Now()); err != nil {
			b.Fatal(err)
		}
		for k, vs := range r.Header {
			fmt.Fprintf(&hdr, "wrk.headers[%q] = %q\n", k, vs[0])
		}
	}
	script := filepath.Join(b.TempDir(), "post.lua")
	lua := fmt.Sprintf("wrk.method = \"POST\"\nwrk.body = %q\nwrk.headers[\"Content-Type\"] = \"application/json\"\n%s", benchBody, hdr.String())
	if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("wrk", "-t1", "-c"+strconv.Itoa(conc), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "-s", script, t.url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	return parseWrk(b, string(out))
}

var (
	wrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPct    = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	wrkErrs   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(b *testing.B, out string) loadResult {
	var r loadResult
	m := wrkRPS.FindStringSubmatch(out)
	if m == nil {
		b.Fatalf("wrk printed no rate:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range wrkPct.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	if m := wrkErrs.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errors += n
		}
	}
	return r
}

// medians is the median of each figure over runs of one target.
func medians(rs []loadResult) loadResult {
	pick := func(f func(loadResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	var m loadResult
	m.rps = pick(func(r loadResult) float64 { return r.rps })
	m.p50 = time.Duration(pick(func(r loadResult) float64 { return float64(r.p50) }))
	m.p99 = time.Duration(pick(func(r loadResult) float64 { return float64(r.p99) }))
	m.cpuPerReq = time.Duration(pick(func(r loadResult) float64 { return float64(r.cpuPerReq) }))
	for _, r := range rs {
		m.errors += r.errors
	}
	return m
}

// compare loads every target in rounds, rotating which goes first so that
// drift on a shared machine hits all alike, and returns each one's medians.
func compare(b *testing.B, targets []target, conc int, rounds int, d time.Duration) map[string]loadResult {
	for _, t := range targets {
		measure(b, t, conc, time.Second) // warm up: instances, connections
	}
	runs := map[string][]loadResult{}
	for round := range rounds {
		for k := range targets {
			t := targets[(k+round)%len(targets)]
			runs[t.name] = append(runs[t.name], measure(b, t, conc, d))
		}
	}
	out := map[string]loadResult{}
	for name, rs := range runs {
		out[name] = medians(rs)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
