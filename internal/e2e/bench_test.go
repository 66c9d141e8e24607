package e2e

// Benchmarks against the real binary, each with its baseline measured in
// the same run: a plain Go net/http echo server in its own process.
//
//	go test ./internal/e2e -run '^$' -bench . -benchtime 1x
//
// Figures are reported as ratios to the baseline; absolute numbers on a
// shared machine are noise.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/stratus-faas/stratus/internal/function"
)

var (
	echoOnce sync.Once
	echoBin  string
	echoErr  error
)

// startEcho runs the baseline server and returns its URL.
func startEcho(b *testing.B) string {
	echoOnce.Do(func() {
		echoBin = filepath.Join(binDir, "echoserver")
		echoErr = goBuild(echoBin, "./internal/e2e/echoserver")
	})
	if echoErr != nil {
		b.Fatal(echoErr)
	}
	addr := freeAddr(b)
	cmd := exec.Command(echoBin, addr)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr + "/"
	waitFor(b, 10*time.Second, "echo server", func() bool {
		resp, err := http.Post(url, "application/json", bytes.NewReader([]byte("{}")))
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return url
}

const benchBody = `{"name":"bench","echo":{"id":12345,"items":["a","b","c"],"flag":true,"note":"a small JSON body"}}`

type loadResult struct {
	rps      float64
	p50, p99 time.Duration
	errors   int64
	// cpuPerReq is the server process's CPU time per request (user and
	// system), when counted.
	cpuPerReq time.Duration
}

// load posts benchBody to url from conc workers for d, like wrk does.
func load(url string, conc int, d time.Duration) loadResult {
	// Requests to Stratus are signed, as any client's are.
	client := &http.Client{Transport: signer{base: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}}
	var count, errs atomic.Int64
	lat := make([][]time.Duration, conc)
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for time.Now().Before(stop) {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader([]byte(benchBody)))
				if err != nil {
					errs.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "" {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
				count.Add(1)
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := loadResult{rps: float64(count.Load()) / d.Seconds(), errors: errs.Load()}
	if len(all) > 0 {
		r.p50, r.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	return r
}

// BenchmarkWarmInvoke: warm invoke throughput and latency at 1 and 32
// concurrent, against the floor of the Lambda model (floorrelay: the same
// function binary behind a bare Runtime API relay, 32 copies) and the
// plain echo server, in the same run: the median of 3 rounds, each target
// loaded in turn in a rotating order. Budget at 32: at least 0.9 of the
// floor's throughput, p99 at most 1.5 times the floor's; at 1: at most
// 0.1 ms added p50 over the floor. "multi" is the same function in
// multi-concurrency environments of 32 (budget at 32: 2.5 times the floor).
func BenchmarkWarmInvoke(b *testing.B) {
	floorURL, floorPid := startFloor(b, 32)
	targets := []target{
		{name: "echo", url: startEcho(b)},
		{name: "floor", url: floorURL, pid: floorPid},
	}
	prof := os.Getenv("STRATUS_BENCH_PROFILE")
	var args []string
	if prof != "" {
		args = append(args, "--pprof")
	}
	s := startServer(b, "", args...)
	createFunction(b, s.lambda(), "bench", goZip(b), fnOpts{})
	// The same function in multi-concurrency environments of 32.
	createFunction(b, s.lambda(), "bench-multi", goZip(b), fnOpts{tags: map[string]string{function.TagMaxConcurrency: "32"}})
	targets = append(targets,
		target{name: "stratus", url: s.Endpoint + "/2015-03-31/functions/bench/invocations", signed: true, pid: s.cmd.Process.Pid},
		target{name: "multi", url: s.Endpoint + "/2015-03-31/functions/bench-multi/invocations", signed: true, pid: s.cmd.Process.Pid})
	for _, conc := range []int{1, 32} {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			m := compare(b, targets, conc, 3, 3*time.Second)
			st, fl, echo, multi := m["stratus"], m["floor"], m["echo"], m["multi"]
			if st.errors+multi.errors > 0 {
				b.Errorf("%d failed invocations", st.errors+multi.errors)
			}
			b.ReportMetric(multi.rps, "multi-invokes/s")
			b.ReportMetric(multi.rps/fl.rps, "multi-floor-ratio")
			b.ReportMetric(ms(multi.p99), "multi-p99-ms")
			b.ReportMetric(st.rps, "invokes/s")
			b.ReportMetric(fl.rps, "floor-req/s")
			b.ReportMetric(echo.rps, "echo-req/s")
			b.ReportMetric(st.rps/fl.rps, "floor-ratio")
			b.ReportMetric(st.rps/echo.rps, "echo-ratio")
			b.ReportMetric(ms(st.p50), "p50-ms")
			b.ReportMetric(ms(st.p99), "p99-ms")
			b.ReportMetric(ms(fl.p50), "floor-p50-ms")
			b.ReportMetric(ms(fl.p99), "floor-p99-ms")
			b.ReportMetric(float64(st.p99)/float64(fl.p99), "p99-over-floor")
			b.ReportMetric(ms(st.p50-fl.p50), "added-p50-ms")
			b.ReportMetric(float64(st.cpuPerReq.Microseconds()), "server-cpu-us/req")
			b.ReportMetric(float64(fl.cpuPerReq.Microseconds()), "floor-cpu-us/req")
			if prof != "" {
				profileUnderLoad(b, s, targets[2], conc, filepath.Join(prof, fmt.Sprintf("warm-c%d", conc)))
			}
		})
	}
}

// profileUnderLoad saves the server's CPU profile, and a trace of one
// second, taken while t is under load, to prefix.cpu and prefix.trace
// (STRATUS_BENCH_PROFILE=DIR asks for them).
func profileUnderLoad(b *testing.B, s *server, t target, conc int, prefix string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		measure(b, t, conc, 8*time.Second)
	}()
	time.Sleep(time.Second)
	for _, p := range []struct{ path, file string }{{"profile?seconds=5", ".cpu"}, {"trace?seconds=1", ".trace"}} {
		resp, err := http.Get(s.Endpoint + "/debug/pprof/" + p.path)
		if err != nil {
			b.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err := os.WriteFile(prefix+p.file, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

// BenchmarkAuthCost: what checking signatures costs a warm invoke: the
// same signed requests at 32 and 1 concurrent against a server that
// verifies them and one in --dev-auth that takes them as the root's,
// alternating in one run. The ratio is verified over unverified
// throughput (budget: at least 0.95).
func BenchmarkAuthCost(b *testing.B) {
	s := startServer(b, "")
	dev := startServer(b, "", "--dev-auth")
	createFunction(b, s.lambda(), "bench", goZip(b), fnOpts{})
	createFunction(b, dev.lambda(), "bench", goZip(b), fnOpts{})
	const path = "/2015-03-31/functions/bench/invocations"
	for _, conc := range []int{32, 1} {
		b.Run(fmt.Sprintf("c%d", conc), func(b *testing.B) {
			load(s.Endpoint+path, conc, time.Second)
			load(dev.Endpoint+path, conc, time.Second)
			var signed, open loadResult
			const rounds = 6
			for range rounds {
				f := load(s.Endpoint+path, conc, time.Second)
				o := load(dev.Endpoint+path, conc, time.Second)
				signed.rps += f.rps / rounds
				open.rps += o.rps / rounds
				signed.p50 += f.p50 / rounds
				open.p50 += o.p50 / rounds
				signed.errors += f.errors + o.errors
			}
			if signed.errors > 0 {
				b.Errorf("%d failed invocations", signed.errors)
			}
			b.ReportMetric(signed.rps, "verified-invokes/s")
			b.ReportMetric(open.rps, "unverified-invokes/s")
			b.ReportMetric(signed.rps/open.rps, "ratio")
			b.ReportMetric(float64((signed.p50-open.p50).Microseconds())/1000, "added-p50-ms")
		})
	}
}

// BenchmarkColdStart: client-observed latency of an invocation that must
// start a new instance of a Go function, against starting the plain echo
// server process and getting its first answer.
func BenchmarkColdStart(b *testing.B) {
	startEcho(b) // builds the baseline binary
	b.Run("go-sandboxed", func(b *testing.B) { coldStart(b, goZip(b), fnOpts{}) })
	// The same, in the host's network: what a network of its own costs.
	b.Run("go-sandboxed-hostnet", func(b *testing.B) { coldStart(b, goZip(b), fnOpts{}, "--host-network", "cold") })
	b.Run("go-unsandboxed", func(b *testing.B) { coldStart(b, goZip(b), fnOpts{}, "--unsandboxed") })
	// Node.js and Python take pre-started sandboxes (one ready per
	// runtime, the default); -cold without them.
	b.Run("node", func(b *testing.B) {
		coldStart(b, nodeZip(b), fnOpts{runtime: "nodejs20.x", handler: "index.handler"})
	})
	b.Run("python", func(b *testing.B) {
		coldStart(b, pythonZip(b), fnOpts{runtime: "python3.11", handler: "lambda_function.lambda_handler"})
	})
	b.Run("node-cold", func(b *testing.B) {
		coldStart(b, nodeZip(b), fnOpts{runtime: "nodejs20.x", handler: "index.handler"}, "--prewarm", "0")
	})
	b.Run("python-cold", func(b *testing.B) {
		coldStart(b, pythonZip(b), fnOpts{runtime: "python3.11", handler: "lambda_function.lambda_handler"}, "--prewarm", "0")
	})
}

func coldStart(b *testing.B, zip []byte, o fnOpts, args ...string) {
	s := startServer(b, "", args...)
	c := s.lambda()
	ctx := context.Background()
	createFunction(b, c, "cold", zip, o)
	const runs = 30
	var cold, base []time.Duration
	// One start first, untimed: it fills the page cache and, for Node.js
	// and Python, starts the first pre-started sandbox (a runtime holds
	// none until it is used).
	for i := range runs + 1 {
		// A configuration change retires the pool: the next invoke is cold.
		if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("cold"), Description: aws.String(fmt.Sprint(i))}); err != nil {
			b.Fatal(err)
		}
		// Pre-started sandboxes are the server's children too: wait for the
		// old instance to go and, where the runtime has them, one to be ready.
		waitFor(b, 5*time.Second, "old instance to go", func() bool { return len(s.instances()) == 0 })
		if i > 0 && o.runtime != "" && !slices.Contains(args, "0") {
			waitFor(b, 5*time.Second, "a pre-started sandbox", func() bool { return metricValue(b, s, "stratus_prewarmed_sandboxes") >= 1 })
		}
		// Let the old instance's teardown (cgroup removal, namespace release)
		// finish: this measures a cold start, not one racing a teardown.
		time.Sleep(100 * time.Millisecond)
		t0 := time.Now()
		out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("cold"), Payload: []byte(benchBody)})
		if err != nil || out.FunctionError != nil {
			b.Fatalf("cold invoke: %v", err)
		}
		if i == 0 {
			continue
		}
		cold = append(cold, time.Since(t0))
		base = append(base, echoColdStart(b))
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	p99 := func(d []time.Duration) time.Duration { return d[len(d)*99/100] }
	mc, mb := med(cold), med(base)
	b.ReportMetric(float64(mc.Microseconds())/1000, "cold-p50-ms")
	b.ReportMetric(float64(p99(cold).Microseconds())/1000, "cold-p99-ms")
	b.ReportMetric(float64(mb.Microseconds())/1000, "baseline-p50-ms")
	b.ReportMetric(float64(mc)/float64(mb), "ratio")
	// What a ready sandbox holds: its memory, and CPU while it waits; the
	// function's instance retired first, so only ready sandboxes remain.
	if o.runtime != "" && !slices.Contains(args, "0") {
		if _, err := c.UpdateFunctionConfiguration(ctx, &lambda.UpdateFunctionConfigurationInput{FunctionName: aws.String("cold"), Description: aws.String("end")}); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 5*time.Second, "only pre-started sandboxes", func() bool {
			return len(s.prewarmed()) >= 1 && len(s.instances()) == 0
		})
	}
	if ready := s.prewarmed(); len(ready) > 0 {
		n := float64(len(ready))
		var rss, cpu0 int64
		var pids []int
		for p := range ready {
			pids = append(pids, p)
		}
		for _, p := range pids {
			rss += rssKB(p)
			cpu0 += procCPU(b, p)
		}
		time.Sleep(2 * time.Second)
		var cpu1 int64
		for _, p := range pids {
			cpu1 += procCPU(b, p)
		}
		b.ReportMetric(float64(rss)/1024/n, "ready-sandbox-MB")
		b.ReportMetric(float64(cpu1-cpu0)/clockTicks/2*100, "ready-sandbox-cpu-%")
	}
}

// echoColdStart starts the echo server and times its first answer.
func echoColdStart(b *testing.B) time.Duration {
	addr := freeAddr(b)
	t0 := time.Now()
	cmd := exec.Command(echoBin, addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		resp, err := client.Post("http://"+addr+"/", "application/json", bytes.NewReader([]byte(benchBody)))
		if err == nil {
			resp.Body.Close()
			return time.Since(t0)
		}
		if time.Since(t0) > 10*time.Second {
			b.Fatal("echo server did not start")
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// BenchmarkBurst: 1,000 concurrent invocations of a function with no
// instance, under default limits: wall time, failures, instances started.
func BenchmarkBurst(b *testing.B) {
	prof := os.Getenv("STRATUS_BENCH_PROFILE")
	var args []string
	if prof != "" {
		args = append(args, "--pprof")
	}
	s := startServer(b, "", args...)
	createFunction(b, s.lambda(), "burst", goZip(b), fnOpts{timeout: 60})
	const n = 1000
	url := s.Endpoint + "/2015-03-31/functions/burst/invocations"
	client := &http.Client{Transport: signer{base: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}}, Timeout: 120 * time.Second}
	var failed, throttled atomic.Int64
	ids := sync.Map{}
	var wg sync.WaitGroup
	if prof != "" {
		go func() {
			resp, err := http.Get(s.Endpoint + "/debug/pprof/profile?seconds=8")
			if err == nil {
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				_ = os.WriteFile(filepath.Join(prof, "burst.cpu"), data, 0o644)
			}
		}()
	}
	start := time.Now()
	for range n {
		wg.Go(func() {
			resp, err := client.Post(url, "application/json", bytes.NewReader([]byte(`{"sleepMs":100}`)))
			if err != nil {
				failed.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode == 429:
				throttled.Add(1)
			case resp.StatusCode != 200 || resp.Header.Get("X-Amz-Function-Error") != "":
				failed.Add(1)
				if failed.Load() < 3 {
					b.Logf("failure %d: %s", resp.StatusCode, body)
				}
			default:
				var r reply
				if json.Unmarshal(body, &r) == nil {
					ids.Store(r.Instance, true)
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	instances := 0
	ids.Range(func(_, _ any) bool { instances++; return true })
	b.ReportMetric(wall.Seconds(), "wall-s")
	b.ReportMetric(float64(failed.Load()), "failed")
	b.ReportMetric(float64(throttled.Load()), "throttled")
	b.ReportMetric(float64(instances), "instances")
	if failed.Load() > 0 || throttled.Load() > 0 {
		b.Errorf("%d failed, %d throttled", failed.Load(), throttled.Load())
	}
}

// procCPU is the user plus system CPU time of a process, in clock ticks.
func procCPU(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return utime + stime
}

// rssKB is a process's resident memory in KiB.
func rssKB(pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), &kb)
			return kb
		}
	}
	return 0
}

// BenchmarkIdle: CPU of an idle server (after traffic, all instances
// reaped) over 30 s, against the idle echo server over the same 30 s.
func BenchmarkIdle(b *testing.B) {
	echoURL := startEcho(b)
	_ = echoURL
	s := startServer(b, "", "--idle-timeout", "1s")
	createFunction(b, s.lambda(), "idle", goZip(b), fnOpts{})
	invoke(b, s.lambda(), "idle", `{}`)
	waitFor(b, 10*time.Second, "instance reaped", func() bool { return len(s.instances()) == 0 })
	echoPid := 0
	for _, p := range childrenOf(os.Getpid()) {
		if raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); bytes.Contains(raw, []byte("echoserver")) {
			echoPid = p
		}
	}
	s0, e0 := procCPU(b, s.cmd.Process.Pid), procCPU(b, echoPid)
	time.Sleep(30 * time.Second)
	s1, e1 := procCPU(b, s.cmd.Process.Pid), procCPU(b, echoPid)
	tick := 10.0 // ms per clock tick (USER_HZ 100)
	b.ReportMetric(float64(s1-s0)*tick, "server-cpu-ms/30s")
	b.ReportMetric(float64(e1-e0)*tick, "baseline-cpu-ms/30s")
	b.ReportMetric(float64(s1-s0)*tick/300, "server-cpu-%")
}

// BenchmarkIdleInstanceMemory: resident memory per idle warm instance of a
// Go function, against the resident memory of the plain echo server process.
func BenchmarkIdleInstanceMemory(b *testing.B) {
	startEcho(b)
	s := startServer(b, "")
	c := s.lambda()
	createFunction(b, c, "mem", goZip(b), fnOpts{timeout: 10})
	const n = 20
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { invoke(b, c, "mem", `{"sleepMs":500}`) })
	}
	wg.Wait()
	time.Sleep(time.Second)
	inst := s.instances()
	var total int64
	for _, p := range inst {
		total += rssKB(p)
	}
	echoRSS := int64(0)
	for _, p := range childrenOf(os.Getpid()) {
		if raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p)); bytes.Contains(raw, []byte("echoserver")) {
			echoRSS = rssKB(p)
		}
	}
	per := float64(total) / float64(len(inst)) / 1024
	b.ReportMetric(float64(len(inst)), "instances")
	b.ReportMetric(per, "MB/idle-instance")
	b.ReportMetric(float64(echoRSS)/1024, "baseline-MB")
	b.ReportMetric(per/(float64(echoRSS)/1024), "ratio")
}

// BenchmarkGateway: requests per second through a function URL, against
// the same function through the Invoke API and the plain echo server, at
// 32 concurrent in one run.
func BenchmarkGateway(b *testing.B) {
	echo := startEcho(b)
	s := startServer(b, "")
	c := s.lambda()
	createFunction(b, c, "gw", goZip(b), fnOpts{})
	cfg, err := c.CreateFunctionUrlConfig(context.Background(), &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("gw"), AuthType: "NONE"})
	if err != nil {
		b.Fatal(err)
	}
	allowPublicURL(b, c, "gw", "")
	furl := aws.ToString(cfg.FunctionUrl)
	invokeURL := s.Endpoint + "/2015-03-31/functions/gw/invocations"
	for _, u := range []string{furl, invokeURL, echo} {
		load(u, 32, time.Second) // warm up
	}
	var viaURL, viaInvoke, base loadResult
	for range 2 {
		e, f, i := load(echo, 32, 2*time.Second), load(furl, 32, 2*time.Second), load(invokeURL, 32, 2*time.Second)
		base.rps += e.rps / 2
		viaURL.rps += f.rps / 2
		viaInvoke.rps += i.rps / 2
		viaURL.errors += f.errors
	}
	if viaURL.errors > 0 {
		b.Errorf("%d failed requests through the function URL", viaURL.errors)
	}
	b.ReportMetric(viaURL.rps, "url-req/s")
	b.ReportMetric(viaInvoke.rps, "invoke-req/s")
	b.ReportMetric(base.rps, "baseline-req/s")
	b.ReportMetric(viaURL.rps/viaInvoke.rps, "url/invoke")
	b.ReportMetric(viaURL.rps/base.rps, "url/baseline")
}

// loadReqs is load with any request: conc workers for d, counting answers
// with status want.
func loadReqs(conc int, d time.Duration, want int, req func() *http.Request) (rps float64, errs int64) {
	client := &http.Client{Transport: signer{base: &http.Transport{MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc}}}
	var count, bad atomic.Int64
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for time.Now().Before(stop) {
				resp, err := client.Do(req())
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != want {
					bad.Add(1)
					continue
				}
				count.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(count.Load()) / d.Seconds(), bad.Load()
}

// BenchmarkAccepted: durable acceptance of work, each answer given only
// once the store has it on disk (fsync): asynchronous invokes, SendMessage,
// SendMessageBatch of 10, and draining a queue with ReceiveMessage and
// DeleteMessageBatch. Baseline: the echo server at the same concurrency.
func BenchmarkAccepted(b *testing.B) {
	const conc = 32
	echo := startEcho(b)
	s := startServer(b, "")
	c := s.lambda()
	createFunction(b, c, "sink", goZip(b), fnOpts{})
	// Reserved 0: accepted events wait in the store instead of running, so
	// acceptance alone is measured.
	if _, err := c.PutFunctionConcurrency(context.Background(), &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("sink"), ReservedConcurrentExecutions: aws.Int32(0)}); err != nil {
		b.Fatal(err)
	}
	qc := s.sqs()
	qurl := createQueue(b, qc, "bench", nil)
	sqsReq := func(op, body string) *http.Request {
		r, _ := http.NewRequest("POST", s.Endpoint+"/", strings.NewReader(body))
		r.Header.Set("X-Amz-Target", "AmazonSQS."+op)
		r.Header.Set("Content-Type", "application/x-amz-json-1.0")
		return r
	}
	send := fmt.Sprintf(`{"QueueUrl":%q,"MessageBody":%q}`, qurl, benchBody)
	var batch strings.Builder
	fmt.Fprintf(&batch, `{"QueueUrl":%q,"Entries":[`, qurl)
	for i := range 10 {
		if i > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"Id":"m%d","MessageBody":%q}`, i, benchBody)
	}
	batch.WriteString("]}")
	base, _ := loadReqs(conc, 2*time.Second, 200, func() *http.Request {
		r, _ := http.NewRequest("POST", echo, strings.NewReader(benchBody))
		return r
	})
	events, e1 := loadReqs(conc, 2*time.Second, 202, func() *http.Request {
		r, _ := http.NewRequest("POST", s.Endpoint+"/2015-03-31/functions/sink/invocations", strings.NewReader(benchBody))
		r.Header.Set("X-Amz-Invocation-Type", "Event")
		return r
	})
	sends, e2 := loadReqs(conc, 2*time.Second, 200, func() *http.Request { return sqsReq("SendMessage", send) })
	batches, e3 := loadReqs(conc, 2*time.Second, 200, func() *http.Request { return sqsReq("SendMessageBatch", batch.String()) })
	if e1+e2+e3 > 0 {
		b.Errorf("failed requests: events %d, sends %d, batches %d", e1, e2, e3)
	}
	// Drain: receive ten, delete ten, with 8 workers, until empty.
	before, _ := strconv.Atoi(queueAttrs(b, qc, qurl)["ApproximateNumberOfMessages"])
	var drained, lastDone atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				// A one-second long poll: an empty answer means drained,
				// not that another worker's fetch held the rest a moment.
				out, err := qc.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &qurl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
				if err != nil {
					b.Errorf("receive: %v", err)
					return
				}
				if len(out.Messages) == 0 {
					return
				}
				var entries []sqstypes.DeleteMessageBatchRequestEntry
				for i, m := range out.Messages {
					entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
				}
				if _, err := qc.DeleteMessageBatch(context.Background(), &sqs.DeleteMessageBatchInput{QueueUrl: &qurl, Entries: entries}); err != nil {
					b.Errorf("delete: %v", err)
					return
				}
				drained.Add(int64(len(entries)))
				lastDone.Store(int64(time.Since(start)))
			}
		})
	}
	wg.Wait()
	drainRate := float64(drained.Load()) / time.Duration(lastDone.Load()).Seconds()
	if int(drained.Load()) < before {
		b.Errorf("drained %d of %d", drained.Load(), before)
	}
	b.ReportMetric(base, "baseline-req/s")
	b.ReportMetric(events, "async-events/s")
	b.ReportMetric(sends, "sqs-send/s")
	b.ReportMetric(batches*10, "sqs-batched-msgs/s")
	b.ReportMetric(drainRate, "sqs-drain-msgs/s")
	b.ReportMetric(events/base, "events/baseline")
	b.ReportMetric(sends/base, "send/baseline")
	b.ReportMetric(batches*10/base, "batched-msgs/baseline")
}
