// Package e2e drives the real stratus binary, started on loopback ports
// with a temporary data folder, with real clients: aws-sdk-go-v2, the AWS
// CLI, boto3 and the stratus CLI.
package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"
)

var (
	binDir      string // holds the stratus binary and the Go example's bootstrap
	stratusBin  string
	plainBin    string // built without the race detector, for memory figures
	goBootstrap []byte
	repoRoot    string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		// -short runs the unit tests of the other packages alone.
		fmt.Println("e2e: not run with -short")
		return 0
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	var err error
	binDir, err = os.MkdirTemp("", "stratus-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(binDir)
	stratusBin = filepath.Join(binDir, "stratus")
	if err := goBuild(stratusBin, "./cmd/stratus"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	plainBin = stratusBin
	if raceServer() {
		plainBin = filepath.Join(binDir, "stratus-plain")
		if err := goBuildPlain(plainBin, "./cmd/stratus"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	bs := filepath.Join(binDir, "bootstrap")
	if err := goBuild(bs, "./examples/go-hello"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if goBootstrap, err = os.ReadFile(bs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// raceServer: the server is built with the race detector when the tests
// run under it (go test -race, as .ci/run does) or STRATUS_E2E_RACE is set.
func raceServer() bool { return raceBuild || os.Getenv("STRATUS_E2E_RACE") != "" }

func goBuild(out, pkg string) error {
	return build(out, pkg, raceServer() && strings.HasSuffix(pkg, "cmd/stratus"))
}

func goBuildPlain(out, pkg string) error { return build(out, pkg, false) }

func build(out, pkg string, race bool) error {
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = repoRoot
	if !race {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// server is one running stratus process.
type server struct {
	t        testing.TB
	cmd      *exec.Cmd
	dataDir  string
	addr     string
	Endpoint string
	args     []string
	env      []string
	inherit  []*os.File // descriptors passed beyond the standard three
	out      *lockedBuffer
	done     chan struct{}
	bin      string // the binary; stratusBin unless set
	root     aws.Credentials
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs stratus with a fresh data folder (or dataDir, to restart on old state).
func startServer(t testing.TB, dataDir string, args ...string) *server {
	t.Helper()
	return startServerIn(t, dataDir, nil, args...)
}

// startServerEnv starts a server with extra environment variables.
func startServerEnv(t testing.TB, env []string, args ...string) *server {
	t.Helper()
	return startServerIn(t, "", env, args...)
}

// startPlainServer starts a server built without the race detector, for
// tests that measure its memory.
func startPlainServer(t testing.TB, args ...string) *server {
	t.Helper()
	return startWith(t, plainBin, "", nil, nil, args...)
}

func startServerIn(t testing.TB, dataDir string, env []string, args ...string) *server {
	t.Helper()
	return startServerInherit(t, dataDir, env, nil, args...)
}

// startServerInherit starts a server that inherits files open without
// close-on-exec, as a careless shell or supervisor would leave them.
func startServerInherit(t testing.TB, dataDir string, env []string, files []*os.File, args ...string) *server {
	t.Helper()
	return startWith(t, stratusBin, dataDir, env, files, args...)
}

func startWith(t testing.TB, bin, dataDir string, env []string, files []*os.File, args ...string) *server {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	s := &server{t: t, dataDir: dataDir, addr: freeAddr(t), args: args, env: env, inherit: files, bin: bin}
	s.Endpoint = "http://" + s.addr
	s.start()
	t.Cleanup(func() {
		s.kill()
		if strings.Contains(s.out.String(), "DATA RACE") {
			t.Error("the server reported a data race")
		}
		if t.Failed() {
			t.Logf("server output:\n%s", s.out.String())
		}
	})
	return s
}

func (s *server) start() {
	s.t.Helper()
	args := append([]string{"server", "--listen", s.addr, "--http-listen", freeAddr(s.t), "--data-dir", s.dataDir}, s.args...)
	bin := stratusBin
	if s.bin != "" {
		bin = s.bin
	}
	s.cmd = exec.Command(bin, args...)
	s.out = &lockedBuffer{}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.Env = append(os.Environ(), s.env...)
	s.cmd.ExtraFiles = s.inherit
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.Endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				s.loadCredentials()
				s.ensureRoles()
				return
			}
		}
		select {
		case <-s.done:
			s.t.Fatalf("server exited during start:\n%s", s.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	s.t.Fatalf("server not healthy after 30s:\n%s", s.out.String())
}

// kill sends SIGKILL to the server alone (instances must die with it).
func (s *server) kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(timeout time.Duration) error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			return fmt.Errorf("exit code %d", code)
		}
		return nil
	case <-time.After(timeout):
		return errors.New("server did not exit after SIGTERM")
	}
}

func (s *server) restart() {
	s.t.Helper()
	s.start()
}

func (s *server) lambda() *lambda.Client {
	return lambda.New(lambda.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		Credentials:  s.creds(),
		HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}},
	})
}

// instances returns the pids of instance processes: children of the server.
func (s *server) instances() []int {
	all := childrenOf(s.cmd.Process.Pid)
	ready := s.prewarmed()
	if len(ready) == 0 {
		return all
	}
	var out []int
	for _, p := range all {
		if !ready[p] {
			out = append(out, p)
		}
	}
	return out
}

// prewarmed are the processes of the server's sandboxes ready for cold
// starts: its children, but no function's instances (yet).
func (s *server) prewarmed() map[int]bool {
	resp, err := http.Get(s.Endpoint + "/stratus/v1/node")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var n struct {
		Prewarmed map[string][]int `json:"prewarmed"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&n)
	out := map[int]bool{}
	for _, pids := range n.Prewarmed {
		for _, p := range pids {
			out[p] = true
		}
	}
	return out
}

func childrenOf(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		rest := string(b[bytes.LastIndexByte(b, ')')+2:])
		var state string
		var parent int
		if _, err := fmt.Sscanf(rest, "%s %d", &state, &parent); err == nil && parent == ppid && state != "Z" {
			out = append(out, pid)
		}
	}
	return out
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	return !strings.HasPrefix(rest, "Z")
}

// makeZip builds a zip from name → content; names ending in "bootstrap"
// are executable.
func makeZip(t testing.TB, files map[string][]byte) []byte {
	t.Helper()
	var entries []zipEntry
	for name, data := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "bootstrap") {
			mode = 0o755
		}
		entries = append(entries, zipEntry{name, mode, data})
	}
	return zipOf(t, entries)
}

// zipEntry is one member of a test package.
type zipEntry struct {
	name string
	mode os.FileMode
	data []byte
}

func zipOf(t testing.TB, entries []zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func goZip(t testing.TB) []byte { return makeZip(t, map[string][]byte{"bootstrap": goBootstrap}) }

func readExample(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func nodeZip(t testing.TB) []byte {
	return makeZip(t, map[string][]byte{
		"index.mjs":   readExample(t, "node-hello/index.mjs"),
		"callback.js": readExample(t, "node-hello/callback.js"),
	})
}

func pythonZip(t testing.TB) []byte {
	return makeZip(t, map[string][]byte{"lambda_function.py": readExample(t, "python-hello/lambda_function.py")})
}

type fnOpts struct {
	runtime, handler string
	memory, timeout  int32
	env              map[string]string
	tags             map[string]string
	// perEnv, when set, asks for multi-concurrency environments of that
	// many invocations, with CapacityProviderConfig as a client sends it.
	perEnv int32
}

const capacityProvider = "arn:aws:lambda:us-east-1:000000000000:capacity-provider:stratus"

func createFunction(t testing.TB, c *lambda.Client, name string, zip []byte, o fnOpts) *lambda.CreateFunctionOutput {
	t.Helper()
	if o.runtime == "" {
		o.runtime, o.handler = "provided.al2023", "bootstrap"
	}
	in := &lambda.CreateFunctionInput{
		FunctionName: aws.String(name),
		Runtime:      types.Runtime(o.runtime),
		Handler:      aws.String(o.handler),
		Role:         aws.String("arn:aws:iam::000000000000:role/test"),
		Code:         &types.FunctionCode{ZipFile: zip},
		Tags:         o.tags,
	}
	if o.memory != 0 {
		in.MemorySize = aws.Int32(o.memory)
	}
	if o.timeout != 0 {
		in.Timeout = aws.Int32(o.timeout)
	}
	if o.env != nil {
		in.Environment = &types.Environment{Variables: o.env}
	}
	if o.perEnv != 0 {
		in.CapacityProviderConfig = &types.CapacityProviderConfig{LambdaManagedInstancesCapacityProviderConfig: &types.LambdaManagedInstancesCapacityProviderConfig{
			CapacityProviderArn: aws.String(capacityProvider), PerExecutionEnvironmentMaxConcurrency: aws.Int32(o.perEnv),
		}}
	}
	out, err := c.CreateFunction(context.Background(), in)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return out
}

func invoke(t testing.TB, c *lambda.Client, name, payload string) *lambda.InvokeOutput {
	t.Helper()
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload)})
	if err != nil {
		t.Fatalf("invoke %s: %v", name, err)
	}
	return out
}

// errorCode returns the AWS error code of err, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func httpStatus(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// usageTotals is one function's line of GET /stratus/v1/usage.
type usageTotals struct {
	Function             string  `json:"function"`
	Requests             int     `json:"requests"`
	Errors               int     `json:"errors"`
	ProvisionedGBSeconds float64 `json:"provisionedGBSeconds"`
	GBSeconds            float64 `json:"gbSeconds"`
	EnvironmentGBSeconds float64 `json:"environmentGBSeconds"`
}

// usage is fn's usage so far (zero when it has none).
func (s *server) usage(t testing.TB, fn string) usageTotals {
	t.Helper()
	var rep struct {
		Functions []usageTotals `json:"functions"`
	}
	_ = json.Unmarshal([]byte(getBody(t, s.Endpoint+"/stratus/v1/usage")), &rep)
	for _, f := range rep.Functions {
		if f.Function == fn {
			return f
		}
	}
	return usageTotals{}
}

func getBody(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type rawResponse struct {
	status int
	header http.Header
	body   string
}

func httpPost(url, body string) (*rawResponse, error) {
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// metricValue reads one series of the server's /metrics (0 if absent).
func metricValue(t testing.TB, s *server, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(getBody(t, s.Endpoint+"/metrics"), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}
