// Package sandbox starts an instance process and tears it down completely.
//
// This is the unsandboxed launcher: each instance runs as a child process in
// its own process group with a private temporary folder. Namespaces, cgroups
// and an unprivileged user come with the isolating launcher; callers depend
// only on Layout, Spec and Process, which stay the same.
package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Layout is where an instance sees its code, runtime files and /tmp.
type Layout struct {
	TaskRoot   string
	RuntimeDir string
	TmpDir     string
}

// Spec describes one instance process.
type Spec struct {
	ID       string // unique instance id, used for its private folders
	Argv     []string
	Env      []string
	Layout   Layout
	MemoryMB int
	TmpMB    int
	Output   *os.File // receives stdout and stderr
}

// Launcher starts instance processes.
type Launcher struct {
	root string // private per-instance folders live here
}

// New returns a launcher keeping per-instance folders under root.
func New(root string) (*Launcher, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create instance folder: %w", err)
	}
	// Folders left by a crashed server belong to instances that are gone.
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(root, e.Name()))
	}
	return &Launcher{root: root}, nil
}

// Isolated reports whether instances are sandboxed.
func (l *Launcher) Isolated() bool { return false }

// Layout returns the paths an instance with this code will see.
func (l *Launcher) Layout(id, codeDir, runtimeDir string) Layout {
	return Layout{TaskRoot: codeDir, RuntimeDir: runtimeDir, TmpDir: filepath.Join(l.root, id, "tmp")}
}

// Process is a running instance.
type Process struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
	err  error

	killOnce sync.Once

	memMu  sync.Mutex
	statm  *os.File // kept open: one pread per invocation
	peakMB int
	hwmAt  time.Time
}

// Start launches the instance.
func (l *Launcher) Start(spec Spec) (*Process, error) {
	if len(spec.Argv) == 0 {
		return nil, errors.New("sandbox: empty command")
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
	p := &Process{cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the instance's main process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the main process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit status; valid once Done is closed.
func (p *Process) Err() error { return p.err }

// Kill stops every process of the instance, waits for the main one, and
// removes its private folders. Safe to call more than once.
func (p *Process) Kill() {
	p.killOnce.Do(func() {
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
