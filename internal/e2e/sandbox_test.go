package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// attacker is a Python function whose operations try to break out.
const attacker = `
import json, os, socket, subprocess, time, urllib.request

def handler(event, context):
    op = event["op"]
    if op == "env":
        return dict(os.environ)
    if op == "whoami":
        return {"uid": os.getuid(), "pid": os.getpid(), "api": os.environ["AWS_LAMBDA_RUNTIME_API"]}
    if op == "hog":
        chunks = []
        while True:
            chunks.append(bytearray(16 * 1024 * 1024))
    if op == "forkbomb":
        n = 0
        deadline = time.time() + event.get("seconds", 30)
        while time.time() < deadline:
            try:
                if os.fork() == 0:
                    while True:
                        time.sleep(1)
                n += 1
            except OSError:
                time.sleep(0.001)
        return {"forked": n}
    if op == "fill_tmp":
        written = 0
        try:
            with open("/tmp/filler", "wb") as f:
                while written < event["mb"] * 1024 * 1024:
                    f.write(b"x" * (1024 * 1024))
                    f.flush()
                    written += 1024 * 1024
        except OSError as e:
            return {"written": written, "error": e.strerror}
        return {"written": written}
    if op == "fill_inodes":
        os.makedirs("/tmp/many", exist_ok=True)
        n = 0
        try:
            while n < 10000000:
                os.close(os.open("/tmp/many/%d" % n, os.O_CREAT | os.O_WRONLY))
                n += 1
        except OSError as e:
            err = e.strerror
        for i in range(n):
            os.unlink("/tmp/many/%d" % i)
        return {"created": n, "error": err}
    if op == "tmp_write":
        with open("/tmp/secret", "w") as f:
            f.write(event["value"])
        return {"ok": True}
    if op == "tmp_read":
        try:
            return {"value": open("/tmp/secret").read(), "listing": os.listdir("/tmp")}
        except OSError as e:
            return {"error": e.strerror, "listing": os.listdir("/tmp")}
    if op == "probe":
        out = {}
        for p in event["paths"]:
            try:
                out[p] = "listed %d" % len(os.listdir(p)) if os.path.isdir(p) else "read %d" % len(open(p, "rb").read())
            except OSError as e:
                out[p] = "denied: " + (e.strerror or "")
        return out
    if op == "write":
        out = {}
        for p in event["paths"]:
            try:
                with open(p, "w") as f:
                    f.write("x")
                out[p] = "written"
            except OSError as e:
                out[p] = "denied: " + (e.strerror or "")
        return out
    if op == "procs":
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        environs = {}
        for p in pids:
            try:
                environs[p] = len(open("/proc/%d/environ" % p, "rb").read())
            except OSError as e:
                environs[p] = -1
        return {"pids": pids, "environs": environs}
    if op == "steal":
        host, port = event["api"].split(":")
        try:
            s = socket.create_connection((host, int(port)), timeout=2)
            s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(2)
            data = s.recv(4096)
            return {"answer": data.decode(errors="replace")}
        except OSError as e:
            return {"error": str(e)}
    if op == "syscalls":
        import ctypes, platform, threading
        libc = ctypes.CDLL(None, use_errno=True)
        nr = {"x86_64": {"ptrace": 101, "keyctl": 250, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425, "perf_event_open": 298},
              "aarch64": {"ptrace": 117, "keyctl": 219, "bpf": 280, "userfaultfd": 282, "io_uring_setup": 425, "perf_event_open": 241}}[platform.machine()]
        params = ctypes.create_string_buffer(256)
        calls = {
            "unshare_user": lambda: libc.unshare(0x10000000),
            "ptrace_traceme": lambda: libc.syscall(nr["ptrace"], 0, 0, 0, 0),
            "keyctl": lambda: libc.syscall(nr["keyctl"], 0, -3, 0),
            "bpf": lambda: libc.syscall(nr["bpf"], 0, 0, 0),
            "userfaultfd": lambda: libc.syscall(nr["userfaultfd"], 0),
            "io_uring_setup": lambda: libc.syscall(nr["io_uring_setup"], 4, params),
        }
        out = {}
        for name, f in calls.items():
            ctypes.set_errno(0)
            rc = f()
            out[name] = "ok" if rc >= 0 else os.strerror(ctypes.get_errno())
        # What functions do every day still works: threads, processes.
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()
        out["thread"] = "ok"
        out["subprocess"] = subprocess.run(["/bin/sh", "-c", "echo hi"], capture_output=True, text=True).stdout.strip()
        return out
    if op == "spin":
        hogs = [subprocess.Popen(["python3", "-c", "while True: pass"]) for _ in range(event["procs"])]
        time.sleep(event["seconds"])
        for h in hogs:
            h.kill()
            h.wait()
        return {"spun": len(hogs)}
    if op == "killall":
        out = {}
        try:
            os.kill(-1, 9)
            out["all"] = "sent"
        except OSError as e:
            out["all"] = e.strerror
        for pid in event["pids"]:
            try:
                os.kill(pid, 9)
                out[str(pid)] = "killed"
            except OSError as e:
                out[str(pid)] = e.strerror
        return out
    if op == "privileges":
        import threading
        stop = threading.Event()
        workers = [threading.Thread(target=stop.wait) for _ in range(3)]
        for w in workers:
            w.start()
        threads = {}
        for tid in os.listdir("/proc/self/task"):
            fields = {}
            for line in open("/proc/self/task/%s/status" % tid):
                k, _, v = line.partition(":")
                if k in ("NoNewPrivs", "Seccomp", "CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
                    fields[k] = v.strip()
            threads[tid] = fields
        stop.set()
        for w in workers:
            w.join()
        limits = [l for l in open("/proc/self/limits") if l.startswith("Max open files")]
        fds = {}
        for f in os.listdir("/proc/self/fd"):
            try:
                fds[f] = os.readlink("/proc/self/fd/" + f)
            except OSError:
                pass
        exe = {}
        for p in ("/proc/self/exe", "/proc/1/exe", os.path.realpath("/proc/self/exe")):
            try:
                open(p, "r+b").close()
                exe[p] = "opened for writing"
            except OSError as e:
                exe[p] = "denied: " + (e.strerror or "")
        opened = []
        try:
            while len(opened) < 100000:
                opened.append(os.open("/dev/null", os.O_RDONLY))
            files = "no limit"
        except OSError as e:
            files = "%d then %s" % (len(opened), e.strerror)
        for fd in opened:
            os.close(fd)
        return {"threads": threads, "limits": limits, "fds": fds, "cwd": os.getcwd(), "exe": exe, "files": files}
    if op == "flood":
        line = b"x" * (1024 * 1024 - 1) + b"\n"
        for _ in range(event["mb"]):
            os.write(1, line)
        os.write(2, b"y" * (4 * 1024 * 1024))
        return {"ok": True}
    if op == "detach":
        subprocess.Popen(["sleep", "300"], start_new_session=True)
        subprocess.Popen(["sh", "-c", "(setsid sleep 301 &) ; exit 0"])
        time.sleep(0.2)
        return {"ok": True}
    return {"unknown": op}
`

func attackerZip(t testing.TB) []byte {
	return makeZip(t, map[string][]byte{"app.py": []byte(attacker)})
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root; this host runs the tests as an unprivileged user")
	}
}

func call(t *testing.T, c *lambda.Client, fn string, event any) (map[string]any, *lambda.InvokeOutput) {
	t.Helper()
	b, _ := json.Marshal(event)
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(fn), Payload: b, LogType: types.LogTypeTail})
	if err != nil {
		t.Fatalf("invoke %s %s: %v", fn, b, err)
	}
	var m map[string]any
	_ = json.Unmarshal(out.Payload, &m)
	return m, out
}

// sandboxProcs lists host pids of processes running as an instance uid.
func sandboxProcs() map[int]int {
	out := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		f, err := os.Open("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var uid int
			if _, err := fmt.Sscanf(sc.Text(), "Uid:\t%d", &uid); err == nil {
				if uid >= 900000 {
					out[pid] = uid
				}
				break
			}
		}
		f.Close()
	}
	return out
}

func hostMounts(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func assertServes(t *testing.T, s *server, c *lambda.Client) {
	t.Helper()
	if body := getBody(t, s.Endpoint+"/healthz"); !strings.Contains(body, "ok") {
		t.Fatalf("healthz: %q", body)
	}
	if m, _ := call(t, c, "sb-innocent", map[string]any{"op": "whoami"}); m["uid"] == nil {
		t.Fatalf("innocent function does not answer: %v", m)
	}
}

func TestSandbox(t *testing.T) {
	requireRoot(t)
	mountsBefore := hostMounts(t)
	canary, err := os.CreateTemp(t.TempDir(), "inherited")
	if err != nil {
		t.Fatal(err)
	}
	defer canary.Close()
	s := startServerInherit(t, "", []string{"STRATUS_TEST_SECRET=hunter2"}, []*os.File{canary}, "--idle-timeout", "1s")
	if !strings.Contains(s.out.String(), "instances run sandboxed") {
		t.Fatalf("server does not sandbox:\n%s", s.out.String())
	}
	c := s.lambda()
	py := fnOpts{runtime: "python3.11", handler: "app.handler", timeout: 20, tags: map[string]string{"stratus:idle-timeout": "1h"}}
	createFunction(t, c, "sb-innocent", attackerZip(t), py)
	createFunction(t, c, "sb-attacker", attackerZip(t), py)
	createFunction(t, c, "sb-victim", attackerZip(t), fnOpts{runtime: "python3.11", handler: "app.handler", env: map[string]string{"VICTIM_SECRET": "s3cr3t"}, tags: map[string]string{"stratus:idle-timeout": "1h"}})

	t.Run("syscalls", func(t *testing.T) {
		m, _ := call(t, c, "sb-attacker", map[string]any{"op": "syscalls"})
		for _, name := range []string{"unshare_user", "ptrace_traceme", "keyctl", "bpf", "userfaultfd", "io_uring_setup"} {
			if m[name] != "Operation not permitted" {
				t.Errorf("%s: %v, want Operation not permitted", name, m[name])
			}
		}
		if m["thread"] != "ok" || m["subprocess"] != "hi" {
			t.Errorf("ordinary calls broke: %v", m)
		}
	})
	t.Run("identity", func(t *testing.T) {
		a, _ := call(t, c, "sb-attacker", map[string]any{"op": "whoami"})
		v, _ := call(t, c, "sb-victim", map[string]any{"op": "whoami"})
		if a["uid"].(float64) < 900000 || a["uid"] == v["uid"] || a["pid"].(float64) != 1 {
			t.Errorf("attacker %v victim %v: want distinct unprivileged uids and PID 1", a, v)
		}
	})

	t.Run("environment", func(t *testing.T) {
		env, _ := call(t, c, "sb-attacker", map[string]any{"op": "env"})
		for k, v := range env {
			if strings.Contains(fmt.Sprint(v), "hunter2") || strings.Contains(fmt.Sprint(v), "s3cr3t") {
				t.Errorf("attacker sees %s=%v", k, v)
			}
		}
		if env["LAMBDA_TASK_ROOT"] != "/var/task" || env["AWS_LAMBDA_FUNCTION_NAME"] != "sb-attacker" {
			t.Errorf("environment: %v", env)
		}
	})

	t.Run("privileges", func(t *testing.T) {
		m, _ := call(t, c, "sb-attacker", map[string]any{"op": "privileges"})
		threads, _ := m["threads"].(map[string]any)
		if len(threads) < 4 {
			t.Fatalf("want the main thread and three more: %v", m)
		}
		// Every thread, not only the first: no privileges, no way back to them.
		for tid, f := range threads {
			st, _ := f.(map[string]any)
			if st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" {
				t.Errorf("thread %s: %v, want NoNewPrivs 1 and Seccomp 2 (filter)", tid, st)
			}
			for _, k := range []string{"CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"} {
				if strings.Trim(fmt.Sprint(st[k]), "0") != "" {
					t.Errorf("thread %s: %s %v, want none", tid, k, st[k])
				}
			}
		}
		// Only the standard streams and the listing's own descriptor; no
		// listener, store file or cgroup handle of the server.
		// The server got a descriptor it did not open (fd 3 here); it
		// must not pass it on.
		fds, _ := m["fds"].(map[string]any)
		sockets := 0
		for fd, target := range fds {
			switch ts := fmt.Sprint(target); {
			case fd == "0" && ts == "/dev/null", (fd == "1" || fd == "2") && strings.HasPrefix(ts, "pipe:"):
			case strings.HasPrefix(ts, "/proc/"): // the listing itself
			case strings.HasPrefix(ts, "socket:"): // its Runtime API connection
				sockets++
			default:
				t.Errorf("descriptor %s (%s) reached an instance: %v", fd, ts, fds)
			}
		}
		if sockets > 1 {
			t.Errorf("sockets beyond the Runtime API connection: %v", fds)
		}
		if m["cwd"] != "/var/task" {
			t.Errorf("cwd %v", m["cwd"])
		}
		exe, _ := m["exe"].(map[string]any)
		for p, r := range exe {
			if !strings.HasPrefix(fmt.Sprint(r), "denied") {
				t.Errorf("%s: %v", p, r)
			}
		}
		// Lambda's quota of 1,024 file descriptors.
		if l := fmt.Sprint(m["limits"]); !strings.Contains(l, "1024                 1024") {
			t.Errorf("open-file limit: %s", l)
		}
		if f := fmt.Sprint(m["files"]); !strings.HasSuffix(f, "Too many open files") || !strings.HasPrefix(f, "10") {
			t.Errorf("opening files until refused: %s", f)
		}
	})

	t.Run("filesystem", func(t *testing.T) {
		call(t, c, "sb-victim", map[string]any{"op": "tmp_write", "value": "victim-tmp"})
		got, _ := call(t, c, "sb-victim", map[string]any{"op": "tmp_read"})
		if got["value"] != "victim-tmp" {
			t.Errorf("/tmp does not persist across warm invocations: %v", got)
		}
		other, _ := call(t, c, "sb-attacker", map[string]any{"op": "tmp_read"})
		if other["value"] != nil {
			t.Errorf("attacker reads the victim's /tmp: %v", other)
		}
		fnDir := s.dataDir + "/code"
		// Straight, through /proc and climbing out of the code folder.
		hidden := []string{s.dataDir, fnDir, binDir, "/etc/shadow", "/proc/1/root" + s.dataDir, "/proc/self/root" + s.dataDir,
			"/proc/self/cwd/../../.." + s.dataDir, "/var/task/../../.." + s.dataDir}
		probe, _ := call(t, c, "sb-attacker", map[string]any{"op": "probe", "paths": append([]string{"/var/task/app.py"}, hidden...)})
		for _, p := range hidden {
			if !strings.HasPrefix(fmt.Sprint(probe[p]), "denied") {
				t.Errorf("%s reachable from an instance: %v", p, probe[p])
			}
		}
		if !strings.HasPrefix(fmt.Sprint(probe["/var/task/app.py"]), "read") {
			t.Errorf("own code not readable: %v", probe)
		}
		w, _ := call(t, c, "sb-attacker", map[string]any{"op": "write", "paths": []string{"/var/task/x", "/etc/x", "/usr/x", "/x", "/tmp/x"}})
		for _, p := range []string{"/var/task/x", "/etc/x", "/usr/x", "/x"} {
			if !strings.HasPrefix(fmt.Sprint(w[p]), "denied") {
				t.Errorf("wrote %s: %v", p, w[p])
			}
		}
		if w["/tmp/x"] != "written" {
			t.Errorf("/tmp not writable: %v", w["/tmp/x"])
		}
	})

	t.Run("processes", func(t *testing.T) {
		uid := int(mustFloat(t, call1(t, c, "sb-attacker", "uid")))
		got, _ := call(t, c, "sb-attacker", map[string]any{"op": "procs"})
		pids, _ := got["pids"].([]any)
		all := sandboxProcs()
		for _, p := range pids {
			pid := int(p.(float64))
			if pid == s.cmd.Process.Pid {
				t.Errorf("instance sees the server (pid %d)", pid)
			}
			if owner, ok := all[pid]; !ok || owner != uid {
				t.Errorf("instance of uid %d sees pid %d of uid %d", uid, pid, owner)
			}
		}
		if len(pids) == 0 {
			t.Error("instance sees no process at all")
		}
		// Signals reach no one outside: not every process (-1), not the
		// server or the victim by their host numbers.
		v, _ := call(t, c, "sb-victim", map[string]any{"op": "whoami"})
		var victim int
		for pid, u := range sandboxProcs() {
			if float64(u) == v["uid"] {
				victim = pid
			}
		}
		k, _ := call(t, c, "sb-attacker", map[string]any{"op": "killall", "pids": []int{s.cmd.Process.Pid, victim}})
		t.Logf("signals from an instance: %v", k)
		for _, pid := range []int{s.cmd.Process.Pid, victim} {
			if k[fmt.Sprint(pid)] == "killed" {
				t.Errorf("attacker killed pid %d: %v", pid, k)
			}
		}
		if again, _ := call(t, c, "sb-victim", map[string]any{"op": "whoami"}); again["uid"] != v["uid"] {
			t.Errorf("victim after kill(-1): %v, before %v", again, v)
		}
	})

	t.Run("runtime api of another instance", func(t *testing.T) {
		v, _ := call(t, c, "sb-victim", map[string]any{"op": "whoami"})
		api := v["api"].(string)
		got, _ := call(t, c, "sb-attacker", map[string]any{"op": "steal", "api": api})
		if strings.Contains(fmt.Sprint(got["answer"]), "200 OK") || strings.Contains(fmt.Sprint(got["answer"]), "Lambda-Runtime") {
			t.Errorf("attacker reached the victim's Runtime API: %v", got)
		}
		// And from the host.
		conn, err := net.DialTimeout("tcp", api, time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			fmt.Fprintf(conn, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
			b, _ := io.ReadAll(conn)
			conn.Close()
			if len(b) > 0 {
				t.Errorf("host process got an answer from an instance's Runtime API: %q", b)
			}
		}
		// The victim still works: nothing was taken from it.
		if m, _ := call(t, c, "sb-victim", map[string]any{"op": "whoami"}); m["api"] != api {
			t.Errorf("victim after the attempt: %v", m)
		}
	})

	t.Run("memory hog", func(t *testing.T) {
		m, out := call(t, c, "sb-attacker", map[string]any{"op": "hog"})
		if aws.ToString(out.FunctionError) == "" || !strings.Contains(fmt.Sprint(m["errorType"]), "Runtime.") {
			t.Fatalf("memory hog: %s", out.Payload)
		}
		if m["errorType"] != "Runtime.OutOfMemory" {
			t.Errorf("errorType %v, want Runtime.OutOfMemory", m["errorType"])
		}
		tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult))
		var used int
		if i := strings.Index(string(tail), "Max Memory Used: "); i >= 0 {
			fmt.Sscanf(string(tail[i:]), "Max Memory Used: %d MB", &used)
		}
		if used < 120 || used > 130 {
			t.Errorf("REPORT Max Memory Used %d MB after an OOM at 128 MB:\n%s", used, tail)
		}
		assertServes(t, s, c)
		if m, _ := call(t, c, "sb-attacker", map[string]any{"op": "whoami"}); m["uid"] == nil {
			t.Errorf("next request after OOM: %v", m)
		}
	})

	t.Run("output flood", func(t *testing.T) {
		before := serverRSS(t, s)
		m, out := call(t, c, "sb-attacker", map[string]any{"op": "flood", "mb": 200})
		if m["ok"] != true {
			t.Fatalf("flood: %s", out.Payload)
		}
		// The tail is Lambda's 4 KB, however much was written.
		if tail, _ := base64.StdEncoding.DecodeString(aws.ToString(out.LogResult)); len(tail) > 4096 || !strings.Contains(string(tail), "REPORT") {
			t.Errorf("log tail of %d bytes: %.200q", len(tail), tail)
		}
		after := serverRSS(t, s)
		t.Logf("server memory %d MB before the flood, %d MB after", before>>20, after>>20)
		limit := int64(128 << 20)
		if raceServer() {
			limit *= 3 // the race detector's shadow memory triples the heap (measured)
		}
		if int64(after) > int64(before)+limit {
			t.Errorf("server memory grew from %d to %d MB with the flood", before>>20, after>>20)
		}
		assertServes(t, s, c)
		// The function's log is stored still: the lines of the next
		// invocation arrive after the flood's.
		_, next := call(t, c, "sb-attacker", map[string]any{"op": "whoami"})
		id, _ := awsmiddleware.GetRequestIDMetadata(next.ResultMetadata)
		var log string
		waitFor(t, 30*time.Second, "the log lines of an invocation after the flood", func() bool {
			log = logsOf(t, s, "sb-attacker")
			return strings.Contains(log, "REPORT RequestId: "+id)
		})
		// What could not be kept is marked where it went missing.
		if !strings.Contains(log, "log lines dropped: the function wrote faster than they could be stored") {
			t.Error("no mark of the dropped lines in the log")
		}
	})

	t.Run("tmp filler", func(t *testing.T) {
		createFunction(t, c, "sb-filler", attackerZip(t), fnOpts{runtime: "python3.11", handler: "app.handler", memory: 1024, timeout: 30})
		m, out := call(t, c, "sb-filler", map[string]any{"op": "fill_tmp", "mb": 700})
		written, _ := m["written"].(float64)
		if out.FunctionError != nil || written > 512<<20 || written < 500<<20 || m["error"] == nil {
			t.Errorf("filling /tmp: %s", out.Payload)
		}
		assertServes(t, s, c)
	})

	t.Run("inode filler", func(t *testing.T) {
		m, out := call(t, c, "sb-filler", map[string]any{"op": "fill_inodes"})
		created, _ := m["created"].(float64)
		if out.FunctionError != nil || created < 60000 || created > 512*128 || m["error"] != "No space left on device" {
			t.Errorf("creating files in /tmp: %s", out.Payload)
		}
		assertServes(t, s, c)
	})

	t.Run("fork bomb", func(t *testing.T) {
		// Memory enough that the pids limit, not the memory limit, stops it.
		createFunction(t, c, "sb-bomb", attackerZip(t), fnOpts{runtime: "python3.11", handler: "app.handler", memory: 4096, timeout: 20})
		var wg sync.WaitGroup
		var bomb map[string]any
		wg.Go(func() { bomb, _ = call(t, c, "sb-bomb", map[string]any{"op": "forkbomb", "seconds": 4}) })
		time.Sleep(time.Second)
		for range 5 {
			start := time.Now()
			assertServes(t, s, c)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("innocent function took %v during the fork bomb", d)
			}
		}
		wg.Wait()
		forked, _ := bomb["forked"].(float64)
		if forked == 0 || forked >= 1024 {
			t.Errorf("fork bomb forked %v times (want bounded by the pids limit): %v", forked, bomb)
		}
		// The bomb's instance goes with its idle timeout (1 s), and every child with it.
		waitFor(t, 10*time.Second, "fork bomb processes to go", func() bool { return len(sandboxProcs())-len(s.prewarmed()) <= 3 })
	})

	t.Run("cpu hog", func(t *testing.T) {
		// Four busy processes of a 128 MB function on a small machine: the
		// innocent function (same weight) and the server keep their share.
		var wg sync.WaitGroup
		var hog map[string]any
		wg.Go(func() { hog, _ = call(t, c, "sb-attacker", map[string]any{"op": "spin", "procs": 4, "seconds": 4}) })
		time.Sleep(time.Second)
		var worst time.Duration
		for range 10 {
			start := time.Now()
			assertServes(t, s, c)
			worst = max(worst, time.Since(start))
		}
		wg.Wait()
		t.Logf("slowest answer of the innocent function beside the hog: %v", worst)
		if worst > 2*time.Second {
			t.Errorf("innocent function took %v beside a CPU hog", worst)
		}
		if hog["spun"] != 4.0 {
			t.Errorf("hog: %v", hog)
		}
	})

	t.Run("detached children die with the instance", func(t *testing.T) {
		createFunction(t, c, "sb-detach", attackerZip(t), fnOpts{runtime: "python3.11", handler: "app.handler"})
		call(t, c, "sb-detach", map[string]any{"op": "whoami"})
		uid := int(mustFloat(t, call1(t, c, "sb-detach", "uid")))
		call(t, c, "sb-detach", map[string]any{"op": "detach"})
		count := func() int {
			n := 0
			for _, u := range sandboxProcs() {
				if u == uid {
					n++
				}
			}
			return n
		}
		if n := count(); n < 3 {
			t.Fatalf("want the runtime and two detached sleeps, have %d processes", n)
		}
		waitFor(t, 10*time.Second, "detached processes to die with the reaped instance", func() bool { return count() == 0 })
	})

	t.Run("detached children die with the server", func(t *testing.T) {
		call(t, c, "sb-attacker", map[string]any{"op": "detach"})
		if len(sandboxProcs()) < 3 {
			t.Fatal("no detached processes")
		}
		s.kill()
		waitFor(t, 10*time.Second, "every instance process to die with the server", func() bool { return len(sandboxProcs()) == 0 })
		s.restart()
		c = s.lambda()
		assertServes(t, s, c)
	})

	s.stop(15 * time.Second)
	waitFor(t, 10*time.Second, "no instance process after shutdown", func() bool { return len(sandboxProcs()) == 0 })
	if n := hostMounts(t); n != mountsBefore {
		t.Errorf("host mount table changed from %d to %d lines", mountsBefore, n)
	}
}

// serverRSS is the server's resident memory in bytes.
func serverRSS(t *testing.T, s *server) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var kb int
	for line := range strings.Lines(string(b)) {
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &kb); err == nil {
			break
		}
	}
	return kb << 10
}

func call1(t *testing.T, c *lambda.Client, fn, key string) any {
	m, _ := call(t, c, fn, map[string]any{"op": "whoami"})
	return m[key]
}

func mustFloat(t *testing.T, v any) float64 {
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("not a number: %v", v)
	}
	return f
}

// TestUnsandboxedFallback: with --unsandboxed (as where the host cannot
// isolate) the server says so loudly and still runs functions.
func TestUnsandboxedFallback(t *testing.T) {
	s := startServer(t, "", "--unsandboxed")
	if !strings.Contains(s.out.String(), "UNSANDBOXED") {
		t.Errorf("no warning:\n%s", s.out.String())
	}
	c := s.lambda()
	createFunction(t, c, "plain", goZip(t), fnOpts{})
	if r := decodeReply(t, invoke(t, c, "plain", `{}`).Payload); r.Message != "hello, world" {
		t.Errorf("reply %+v", r)
	}
	resp, err := http.Get(s.Endpoint + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz: %v", err)
	}
}

// TestTwoServersOneHost: two servers on one host (as the multi-node tests
// and CI run them) give their instances uids of different ranges, so an
// instance of one sees nothing of the other's instances in /proc and
// cannot take the other's invocations through its Runtime API.
func TestTwoServersOneHost(t *testing.T) {
	requireRoot(t)
	a, b := startServer(t, ""), startServer(t, "")
	ca, cb := a.lambda(), b.lambda()
	zip := attackerZip(t)
	createFunction(t, ca, "victim", zip, fnOpts{runtime: "python3.11", handler: "app.handler", env: map[string]string{"SECRET": "server-a-secret"}})
	createFunction(t, cb, "attacker", zip, fnOpts{runtime: "python3.11", handler: "app.handler"})
	v, _ := call(t, ca, "victim", map[string]any{"op": "whoami"})
	m, _ := call(t, cb, "attacker", map[string]any{"op": "whoami"})
	uidA, uidB := int(mustFloat(t, v["uid"])), int(mustFloat(t, m["uid"]))
	if uidA == uidB || (uidA-900000)/65536 == (uidB-900000)/65536 {
		t.Fatalf("instances of two servers run as uids %d and %d: the same range", uidA, uidB)
	}
	var victimPid int
	for pid, u := range sandboxProcs() {
		if u == uidA {
			victimPid = pid
		}
	}
	procs, _ := call(t, cb, "attacker", map[string]any{"op": "procs"})
	for _, p := range procs["pids"].([]any) {
		pid := int(p.(float64))
		if pid == victimPid || pid == a.cmd.Process.Pid {
			t.Errorf("an instance of server B sees pid %d of server A", pid)
		}
	}
	if env := procs["environs"].(map[string]any); victimPid != 0 && env[fmt.Sprint(victimPid)] != nil && env[fmt.Sprint(victimPid)].(float64) > 0 {
		t.Errorf("an instance of server B read the environment of server A's instance")
	}
	got, _ := call(t, cb, "attacker", map[string]any{"op": "steal", "api": v["api"]})
	if strings.Contains(fmt.Sprint(got["answer"]), "200 OK") || strings.Contains(fmt.Sprint(got["answer"]), "Lambda-Runtime") {
		t.Errorf("an instance of server B reached server A's Runtime API: %v", got)
	}
	if again, _ := call(t, ca, "victim", map[string]any{"op": "whoami"}); again["api"] != v["api"] {
		t.Errorf("server A's instance after the attempt: %v", again)
	}
	t.Logf("uids: server A %d, server B %d", uidA, uidB)
}
