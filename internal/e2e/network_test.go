package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"golang.org/x/sys/unix"
)

var (
	netprobeOnce sync.Once
	netprobeZip  []byte
	netprobeErr  error
)

// netprobe is the testdata/netprobe function, built once.
func netprobe(t *testing.T) []byte {
	t.Helper()
	netprobeOnce.Do(func() {
		bin := filepath.Join(binDir, "netprobe")
		if netprobeErr = goBuildPlain(bin, "./internal/e2e/testdata/netprobe"); netprobeErr != nil {
			return
		}
		var code []byte
		if code, netprobeErr = os.ReadFile(bin); netprobeErr == nil {
			netprobeZip = makeZip(t, map[string][]byte{"bootstrap": code})
		}
	})
	if netprobeErr != nil {
		t.Fatal(netprobeErr)
	}
	return netprobeZip
}

type netResult struct {
	Dial     map[string]string `json:"dial"`
	Listen   map[string]string `json:"listen"`
	Sockets  []string          `json:"sockets"`
	Identity string            `json:"identity"`
	Endpoint string            `json:"endpoint"`
	Runtime  string            `json:"runtime"`
	Addrs    []string          `json:"addrs"`
	Gateway  string            `json:"gateway"`
}

func probeNet(t *testing.T, c *lambda.Client, fn string, event map[string]any) netResult {
	t.Helper()
	_, out := call(t, c, fn, event)
	if out.FunctionError != nil {
		logs, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		t.Fatalf("%s failed: %s\n%s", fn, out.Payload, logs)
	}
	var r netResult
	if err := json.Unmarshal(out.Payload, &r); err != nil {
		t.Fatalf("%v: %s", err, out.Payload)
	}
	return r
}

// canary listens where nothing of Stratus is and answers every connection.
func canary(t *testing.T, network, addr string) (net.Listener, bool) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, false
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("canary\n"))
			c.Close()
		}
	}()
	return ln, true
}

func portOf(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// inNetns runs f on a thread in the named network namespace; the thread
// is discarded after.
func inNetns(t *testing.T, ns string, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		h, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			done <- err
			return
		}
		defer h.Close()
		if err := unix.Setns(int(h.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// hostAddr is a non-loopback IPv4 address of this host, if it has one.
func hostAddr() (netip.Addr, bool) {
	ifaces, _ := net.Interfaces()
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagUp == 0 || strings.HasPrefix(ifc.Name, "stx") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !netip.MustParsePrefix("100.64.0.0/10").Contains(p.Addr()) {
				return p.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}

// TestInstanceNetwork attacks the host's network from inside an instance:
// listeners on the host's loopback and interfaces (canaries the test
// opens, another server's API), the host's sockets in /proc/net, other
// instances, and listening for the world; while the same instance
// reaches the Stratus API with an SDK and a host outside this one. A
// function the operator named runs in the host's network.
func TestInstanceNetwork(t *testing.T) {
	requireRoot(t)
	c4, _ := canary(t, "tcp4", "127.0.0.1:0")
	c6, have6 := canary(t, "tcp6", "[::1]:0")
	cAny, _ := canary(t, "tcp", ":0")

	// Another host, outside this one: a namespace with a veth to the host,
	// and a route back to instances (which must not let it in).
	tag := os.Getpid()%200 + 20
	ns := fmt.Sprintf("stratus-out-%d", os.Getpid())
	hostEnd, farEnd := fmt.Sprintf("10.254.%d.1", tag), fmt.Sprintf("10.254.%d.2", tag)
	veth := fmt.Sprintf("sto%d", os.Getpid())
	ip(t, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	ip(t, "link", "add", veth, "type", "veth", "peer", "name", veth+"p")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", veth).Run() })
	ip(t, "link", "set", veth+"p", "netns", ns)
	ip(t, "addr", "add", hostEnd+"/30", "dev", veth)
	ip(t, "link", "set", veth, "up")
	ip(t, "-n", ns, "addr", "add", farEnd+"/30", "dev", veth+"p")
	ip(t, "-n", ns, "link", "set", veth+"p", "up")
	ip(t, "-n", ns, "link", "set", "lo", "up")
	ip(t, "-n", ns, "route", "add", "100.64.0.0/10", "via", hostEnd)
	var outside net.Listener
	inNetns(t, ns, func() { outside, _ = net.Listen("tcp", farEnd+":0") })
	if outside == nil {
		t.Fatal("no listener outside")
	}
	t.Cleanup(func() { outside.Close() })
	go func() {
		for {
			c, err := outside.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	s := startServer(t, "", "--host-network", "hostprobe")
	other := startServer(t, "")
	lc := s.lambda()
	zip := netprobe(t)
	for _, fn := range []string{"probe", "peer", "hostprobe"} {
		createFunction(t, lc, fn, zip, fnOpts{timeout: 20})
	}

	dial := []string{c4.Addr().String(), other.addr, outside.Addr().String(), fmt.Sprintf("127.0.0.1:%d", portOf(cAny))}
	if have6 {
		dial = append(dial, c6.Addr().String())
	}
	hostIP, haveHostIP := hostAddr()
	if haveHostIP {
		dial = append(dial, netip.AddrPortFrom(hostIP, uint16(portOf(cAny))).String())
	}
	r := probeNet(t, lc, "probe", map[string]any{"dial": dial, "listen": []string{"0.0.0.0:0", "[::]:0"}, "gatewayPort": portOf(cAny)})
	t.Logf("instance: addrs %v, gateway %s, runtime API %s, endpoint %s; dials %v", r.Addrs, r.Gateway, r.Runtime, r.Endpoint, r.Dial)
	for a, got := range r.Dial {
		want := a == outside.Addr().String()
		if (got == "connected") != want {
			t.Errorf("dial %s from an instance: %s (should connect: %v)", a, got, want)
		}
	}
	if len(r.Dial) != len(dial)+1 {
		t.Errorf("the gateway was not tried: %v", r.Dial)
	}
	if !strings.Contains(r.Identity, ":assumed-role/") {
		t.Errorf("the SDK inside the instance did not reach the API: %s", r.Identity)
	}
	if r.Runtime != "127.0.0.1:9001" {
		t.Errorf("AWS_LAMBDA_RUNTIME_API %s, want Lambda's 127.0.0.1:9001", r.Runtime)
	}
	hostPorts := map[string]bool{fmt.Sprint(portOf(c4)): true, fmt.Sprint(portOf(cAny)): true, fmt.Sprint(portOf(c6)): have6}
	_, otherPort, _ := net.SplitHostPort(other.addr)
	hostPorts[otherPort] = true
	for _, sock := range r.Sockets {
		if _, port, _ := net.SplitHostPort(sock); hostPorts[port] {
			t.Errorf("the instance sees the host's socket %s in /proc/net", sock)
		}
	}
	// What the instance listens on is not on the host's interfaces, nor
	// reachable from outside or from another instance.
	var ownAddr string
	for _, a := range r.Addrs {
		if p, err := netip.ParsePrefix(a); err == nil && netip.MustParsePrefix("100.64.0.0/10").Contains(p.Addr()) {
			ownAddr = p.Addr().String()
		}
	}
	if ownAddr == "" {
		t.Fatalf("the instance has no address of its own: %v", r.Addrs)
	}
	for a, got := range r.Listen {
		if !strings.HasPrefix(got, "listening on ") {
			t.Errorf("listen on %s inside the instance: %s", a, got)
			continue
		}
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(got, "listening on "))
		targets := []string{"127.0.0.1:" + port, "[::1]:" + port}
		if haveHostIP {
			targets = append(targets, net.JoinHostPort(hostIP.String(), port))
		}
		for _, target := range targets {
			if c, err := net.DialTimeout("tcp", target, time.Second); err == nil {
				c.Close()
				t.Errorf("the instance's listener on %s is reachable on the host at %s", a, target)
			}
		}
		inNetns(t, ns, func() {
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ownAddr, port), time.Second); err == nil {
				c.Close()
				t.Errorf("a host outside reached the instance's listener on %s", a)
			}
		})
		peer := probeNet(t, lc, "peer", map[string]any{"dial": []string{net.JoinHostPort(ownAddr, port), net.JoinHostPort(r.Gateway, port)}})
		for target, got := range peer.Dial {
			if got == "connected" {
				t.Errorf("another instance reached the instance's listener at %s", target)
			}
		}
	}

	// The operator's choice: this function shares the host's network.
	h := probeNet(t, lc, "hostprobe", map[string]any{"dial": []string{c4.Addr().String()}})
	if h.Dial[c4.Addr().String()] != "connected" {
		t.Errorf("a function given the host's network cannot reach its loopback: %v", h.Dial)
	}
	if !strings.Contains(h.Identity, ":assumed-role/") {
		t.Errorf("the SDK of a host-network instance did not reach the API: %s", h.Identity)
	}
	cmd := exec.Command(stratusBin, "ls")
	cmd.Env = append(os.Environ(), "STRATUS_ENDPOINT="+s.Endpoint, "STRATUS_DATA_DIR="+s.dataDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stratus ls: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		want := map[string]string{"probe": "own", "peer": "own", "hostprobe": "host"}[f[0]]
		if want != "" && !strings.Contains(line, " "+want+" ") {
			t.Errorf("stratus ls shows %s without network %q:\n%s", f[0], want, out)
		}
	}
}
