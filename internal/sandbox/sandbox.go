// Package sandbox starts an instance process and tears it down completely.
//
// Where the host allows (root, Linux, cgroups), every instance is isolated:
// its own mount, PID, IPC and UTS namespaces, a read-only root with its code
// at /var/task, a private size-limited /tmp, a uid of its own, no way to
// gain privileges, and a cgroup bounding its memory, processes and CPU
// share. Elsewhere each instance is a plain child process in its own process
// group with a private temporary folder, and the server says so at start.
package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Layout is where an instance sees its code, runtime files and /tmp, and
// the uid it runs as (-1 when not isolated).
type Layout struct {
	TaskRoot   string
	RuntimeDir string
	TmpDir     string
	UID        int
	// RuntimeAPI, when set, is the Runtime API's address inside the
	// instance's own network, whose listener the Process provides;
	// otherwise the caller listens on the host's loopback.
	RuntimeAPI string
	// HostNetwork: the instance shares the host's network.
	HostNetwork bool
}

// Spec describes one instance process.
type Spec struct {
	ID     string // unique instance id, used for its private folders
	Argv   []string
	Env    []string
	Layout Layout
	// Host folders behind Layout.TaskRoot and Layout.RuntimeDir, and the
	// function's layers, seen at /opt ("" for none).
	CodeDir    string
	RuntimeDir string
	OptDir     string
	// NodeSDK, when set, is a host folder of node modules seen at
	// Layout.RuntimeDir/sdk/node_modules.
	NodeSDK  string
	MemoryMB int
	TmpMB    int
	Output   *os.File // receives stdout and stderr

	// Warm starts a sandbox for no function yet: its code folder stays
	// empty until Process.Specialise puts a function's there. Setup is the
	// runtime's descriptor 3, where it waits for the function's
	// environment.
	Warm  bool
	Setup *os.File
}

// Options configure a launcher.
type Options struct {
	// Expose lists host folders (interpreter installations) instances
	// must see.
	Expose []string
	// Unsandboxed runs instances as plain child processes.
	Unsandboxed bool
	// API is the address of the server's API. With ServeAPI, which
	// serves it on a listener, isolated instances get networks of their
	// own in which the API answers at the same address; without, they
	// share the host's network.
	API      netip.AddrPort
	ServeAPI func(net.Listener)
}

// Launcher starts instance processes.
type Launcher struct {
	root string    // per-instance folders live here (absolute)
	iso  *isolator // nil when the host cannot isolate
	why  string    // why not, when iso is nil
	// netWhy says why isolated instances share the host's network.
	netWhy string
}

// New returns a launcher keeping per-instance folders under root. Unless
// told otherwise, it isolates instances when the host allows.
func New(root string, opts Options) (*Launcher, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create instance folder: %w", err)
	}
	// Folders left by a crashed server belong to instances that are gone.
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(root, e.Name()))
	}
	// Descriptors the server inherited without close-on-exec (from a shell
	// or a supervisor) would otherwise pass into every instance.
	if err := closeOnExecAll(); err != nil {
		return nil, err
	}
	l := &Launcher{root: root}
	if opts.Unsandboxed {
		l.why = "disabled with --unsandboxed"
		return l, nil
	}
	var extra []string
	for _, p := range opts.Expose {
		if p != "" && !covered(p) {
			extra = append(extra, p)
		}
	}
	// Each instance gets Lambda's 1,024 open files; it cannot be given
	// more than the server's own hard limit allows.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Max < maxFiles && os.Geteuid() == 0 &&
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: maxFiles, Max: maxFiles}) != nil {
		return nil, fmt.Errorf("the hard limit on open files is %d, below the %d every instance gets as on Lambda: raise it (ulimit -Hn, or LimitNOFILE= for a systemd unit) or run with --unsandboxed", lim.Max, maxFiles)
	}
	iso, netErr, err := newIsolator(root, extra, opts.API, opts.ServeAPI)
	if err != nil {
		l.why = err.Error()
		return l, nil
	}
	l.iso = iso
	if netErr != nil {
		l.netWhy = netErr.Error()
	}
	return l, nil
}

// Close stops the launcher once every instance is gone, removing the
// server's cgroups. Safe to call more than once.
func (l *Launcher) Close() {
	if l.iso != nil {
		l.iso.close()
	}
}

// FilesPerInstance is about how many of the server's own descriptors an
// instance holds: its log pipe, Runtime API listener and connection, the
// files its memory is read from, and its network: the namespace, the
// API's listener and a connection or two, a socket lookup.
const FilesPerInstance = 10

// MaxInstancesByFiles is how many instances the server's open-file limit
// leaves room for, beside a reserve for clients and the store.
func MaxInstancesByFiles() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 1 << 30
	}
	return max(int(lim.Cur)-1024, 0) / FilesPerInstance
}

// Isolated reports whether instances are sandboxed, and if not, why.
func (l *Launcher) Isolated() (bool, string) { return l.iso != nil, l.why }

// NetworkIsolated reports whether instances get networks of their own,
// and if not, why.
func (l *Launcher) NetworkIsolated() (bool, string) {
	if l.iso == nil {
		return false, l.why
	}
	return l.iso.net != nil, l.netWhy
}

// Layout returns the paths an instance will see and allocates its uid;
// Start takes it over, or Release gives it back. hostNetwork asks for the
// host's network, where instances would otherwise get their own.
func (l *Launcher) Layout(id, codeDir, runtimeDir string, hostNetwork bool) (Layout, error) {
	if l.iso == nil {
		return Layout{TaskRoot: codeDir, RuntimeDir: runtimeDir, TmpDir: filepath.Join(l.root, id, "tmp"), UID: -1, HostNetwork: true}, nil
	}
	uid, err := l.iso.allocUID()
	if err != nil {
		return Layout{}, err
	}
	lay := Layout{TaskRoot: taskRoot, RuntimeDir: runtimeRoot, TmpDir: "/tmp", UID: uid, HostNetwork: hostNetwork || l.iso.net == nil}
	if !lay.HostNetwork {
		lay.RuntimeAPI = RuntimeAPIAddr
	}
	return lay, nil
}

// Release returns the uid of a layout that was never started.
func (l *Launcher) Release(lay Layout) {
	if l.iso != nil {
		l.iso.releaseUID(lay.UID)
	}
}

// Process is a running instance.
type Process struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
	err  error
	iso  *isolator
	cg   *instanceCgroup
	uid  int
	net  *instanceNet
	warm *warmRoot // a pre-started sandbox's root, until specialised

	killOnce sync.Once

	memMu  sync.Mutex
	statm  *os.File // kept open: one pread per invocation
	peakMB int
	hwmAt  time.Time
}

// Start launches the instance.
func (l *Launcher) Start(spec Spec) (*Process, error) {
	if len(spec.Argv) == 0 {
		l.Release(spec.Layout)
		return nil, errors.New("sandbox: empty command")
	}
	if spec.Warm && l.iso == nil {
		l.Release(spec.Layout)
		return nil, errors.New("sandbox: pre-started sandboxes need isolation")
	}
	if l.iso != nil {
		r, err := l.iso.start(spec)
		if err != nil {
			l.iso.releaseUID(spec.Layout.UID)
			return nil, err
		}
		cmd, in := r.cmd, r.net
		p := &Process{cmd: cmd, dir: filepath.Join(l.root, spec.ID), done: make(chan struct{}), iso: l.iso, cg: r.ic, uid: spec.Layout.UID, net: in, warm: r.warm}
		if in != nil {
			in.start()
		}
		go func() {
			p.err = cmd.Wait()
			close(p.done)
		}()
		return p, nil
	}
	dir := filepath.Dir(spec.Layout.TmpDir)
	if err := os.MkdirAll(spec.Layout.TmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("create instance tmp: %w", err)
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Layout.TaskRoot
	cmd.Stdout = spec.Output
	cmd.Stderr = spec.Output
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL, // the instance dies with the server
	}
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start instance: %w", err)
	}
	p := &Process{cmd: cmd, dir: dir, done: make(chan struct{}), uid: -1}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Specialise gives a pre-started sandbox (Spec.Warm) to a function: its
// code appears read-only at the task root and its memory limit and CPU
// weight apply. The caller then hands the runtime its environment.
func (p *Process) Specialise(codeDir string, memoryMB int) error {
	w := p.takeWarm()
	if w == nil {
		return errors.New("sandbox: not a pre-started sandbox, or specialised already")
	}
	if err := w.specialise(codeDir); err != nil {
		return err
	}
	return p.cg.resize(memoryMB)
}

func (p *Process) takeWarm() *warmRoot {
	p.memMu.Lock()
	defer p.memMu.Unlock()
	w := p.warm
	p.warm = nil
	return w
}

// RuntimeListener is the Runtime API's listener inside the instance's
// network (Layout.RuntimeAPI), with the lookup of its peers' uids there;
// or nil when the caller listens itself.
func (p *Process) RuntimeListener() (net.Listener, func(net.Conn) (int, error)) {
	if p.net == nil {
		return nil, nil
	}
	return p.net.runtime, p.net.diag.UID
}

// Pid is the host's id of the instance's main process.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the main process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit status; valid once Done is closed.
func (p *Process) Err() error { return p.err }

// Kill stops every process of the instance, waits for the main one, and
// removes its private folders. Safe to call more than once.
func (p *Process) Kill() {
	p.killOnce.Do(func() {
		if w := p.takeWarm(); w != nil {
			w.drop()
		}
		if p.cg != nil {
			// The runtime is its PID namespace's init: killing it ends them all.
			_ = p.cmd.Process.Kill()
			<-p.done
			p.cg.kill()
			p.cg.remove()
			if p.net != nil {
				p.net.close()
			}
			p.iso.releaseUID(p.uid)
			_ = os.RemoveAll(p.dir)
			return
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		_ = os.RemoveAll(p.dir)
		p.memMu.Lock()
		if p.statm != nil {
			_ = p.statm.Close()
		}
		p.memMu.Unlock()
	})
}

// MaxMemoryMB is the peak resident memory of the instance so far. The
// kernel's own peak (VmHWM) is costly to read, so it is read at most once
// a second; between reads the current resident size (statm, one pread)
// keeps the peak current.
func (p *Process) MaxMemoryMB() int {
	p.memMu.Lock()
	defer p.memMu.Unlock()
	if p.cg != nil {
		// The cgroup's peak is exact but a read costs about 10 µs; within
		// 50 ms of the last read the value stands, unless the instance ended.
		now := time.Now()
		select {
		case <-p.done:
		default:
			if now.Sub(p.hwmAt) < 50*time.Millisecond {
				return p.peakMB
			}
		}
		p.hwmAt = now
		p.peakMB = max(p.peakMB, p.cg.peakMB())
		return p.peakMB
	}
	if now := time.Now(); now.Sub(p.hwmAt) >= time.Second {
		p.hwmAt = now
		p.peakMB = max(p.peakMB, p.readHWM())
		return p.peakMB
	}
	if p.statm == nil {
		f, err := os.Open("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/statm")
		if err != nil {
			return p.peakMB
		}
		p.statm = f
	}
	var buf [128]byte
	n, _ := p.statm.ReadAt(buf[:], 0)
	f := bytes.Fields(buf[:n])
	if len(f) > 1 {
		pages, _ := strconv.Atoi(string(f[1]))
		p.peakMB = max(p.peakMB, (pages*pageSize+(1<<20)-1)>>20)
	}
	return p.peakMB
}

var pageSize = os.Getpagesize()

// OOMKilled reports whether the kernel killed the instance for exceeding
// its memory limit. Valid once Done is closed.
func (p *Process) OOMKilled() bool { return p.cg != nil && p.cg.oomKilled() }

func (p *Process) readHWM() int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte("VmHWM:")) {
			f := bytes.Fields(line[len("VmHWM:"):])
			if len(f) > 0 {
				kb, _ := strconv.Atoi(string(f[0]))
				return (kb + 1023) / 1024
			}
		}
	}
	return 0
}

// SDKFolder is where, under the runtime clients' folder, an instance sees
// the Node.js SDK (Spec.NodeSDK).
const SDKFolder = "sdk/node_modules"
