package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

const dashFunction = `export const handler = async (event) => {
  console.log("event " + JSON.stringify(event));
  return { ok: true };
};
`

// TestDashboard drives the dashboard in headless Chromium: signed in by
// the link `stratus dashboard` prints, it shows a function with the right
// counts, pages and searches functions, updates live as the test invokes
// again, follows a log line, shows a queue's depth, fits a phone's width,
// and logs no errors. Screenshots go to artifacts/dashboard; the server's
// CPU with the page open and idle is logged.
func TestDashboard(t *testing.T) {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("Debian's chromium is required; .ci/run installs it")
	}
	js := filepath.Join(repoRoot, "internal", "e2e", "testdata", "js")
	if _, err := os.Stat(filepath.Join(js, "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is required; .ci/run installs it (npm ci in internal/e2e/testdata/js)")
	}
	s := startServer(t, "")
	ctx := context.Background()
	c := s.lambda()
	createFunction(t, c, "dash-fn", makeZip(t, map[string][]byte{"index.mjs": []byte(dashFunction)}), fnOpts{runtime: "nodejs20.x", handler: "index.handler"})
	if _, err := c.CreateFunctionUrlConfig(ctx, &lambda.CreateFunctionUrlConfigInput{FunctionName: aws.String("dash-fn"), AuthType: types.FunctionUrlAuthTypeAwsIam}); err != nil {
		t.Fatal(err)
	}
	createFunction(t, c, "dash-bad", goZip(t), fnOpts{})
	for range 3 {
		invoke(t, c, "dash-bad", `{"fail":"error"}`)
	}
	tiny := makeZip(t, map[string][]byte{"bootstrap": []byte("#!/bin/sh\nexit 1\n")})
	for i := range 55 {
		createFunction(t, c, fmt.Sprintf("filler-%02d", i), tiny, fnOpts{})
	}
	for range 3 {
		invoke(t, c, "dash-fn", `{"n":1}`)
	}
	q := s.sqs()
	url := createQueue(t, q, "dash-queue", nil)
	for i := range 3 {
		if _, err := q.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(stratusBin, "dashboard")
	cmd.Env = append(os.Environ(), "STRATUS_ENDPOINT="+s.Endpoint, "STRATUS_DATA_DIR="+s.dataDir)
	link, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(link), s.Endpoint+"/#") || !strings.Contains(string(link), "secret=") {
		t.Fatalf("stratus dashboard: %v %q", err, link)
	}
	shots := filepath.Join(repoRoot, "artifacts", "dashboard")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	const marker = "followed-marker-7f3a"
	node := exec.Command("node", filepath.Join(js, "dashboard.mjs"), strings.TrimSpace(string(link)), "dash-fn", "3", "dash-queue", "3", marker, shots)
	node.Dir = js
	stdin, _ := node.StdinPipe()
	stdout, _ := node.StdoutPipe()
	var stderr lockedBuffer
	node.Stderr = &stderr
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = node.Process.Kill(); _ = node.Wait() }()
	steps := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "STEP "); ok {
				steps <- name
			}
		}
		close(steps)
	}()
	next := func(want string) {
		t.Helper()
		select {
		case got, ok := <-steps:
			if !ok || got != want {
				_ = node.Wait()
				t.Fatalf("dashboard step %q: got %q\n%s", want, got, stderr.String())
			}
		case <-time.After(90 * time.Second):
			t.Fatalf("dashboard step %q timed out\n%s", want, stderr.String())
		}
	}
	next("overview")
	invoke(t, c, "dash-fn", `{"n":2}`)
	invoke(t, c, "dash-fn", `{"n":3}`)
	fmt.Fprintln(stdin)
	next("live")
	fmt.Fprintln(stdin)
	next("function")
	invoke(t, c, "dash-fn", `{"mark":"`+marker+`"}`)
	fmt.Fprintln(stdin)
	next("log")
	fmt.Fprintln(stdin)
	next("narrow")
	fmt.Fprintln(stdin)
	next("idle")
	// What one open, idle dashboard costs the server (this is the race
	// detector's build of the binary: a plain build costs less).
	cpu0, at0 := cpuTicks(t, s.cmd.Process.Pid), time.Now()
	time.Sleep(15 * time.Second)
	cpu1, at1 := cpuTicks(t, s.cmd.Process.Pid), time.Now()
	t.Logf("server CPU with the dashboard open and idle: %.2f%% of one core over %s", 100*float64(cpu1-cpu0)/100/at1.Sub(at0).Seconds(), at1.Sub(at0).Round(time.Second))
	fmt.Fprintln(stdin)
	next("done")
	stdin.Close()
	if err := node.Wait(); err != nil {
		t.Fatalf("dashboard: %v\n%s", err, stderr.String())
	}
}

// cpuTicks is a process's user and system time in clock ticks (1/100 s).
func cpuTicks(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}
