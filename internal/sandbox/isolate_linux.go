package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The isolating launcher starts instances without a helper process: a few
// spawner threads, each locked to its goroutine with a private mount
// namespace of its own, build an instance's root from bind mounts, clone
// the runtime into new mount, PID, IPC and UTS namespaces chrooted there,
// as a uid of its own, inside its cgroup, and detach the mounts again.
// Re-executing the (large) stratus binary as an init helper would cost
// about 10 ms per cold start on the machines we measured.
//
// Inside the PID namespace the runtime is PID 1: when it dies, the kernel
// kills every process it started, however it detached. The proc file
// system is mounted with hidepid=2, so an instance sees only processes of
// its own uid, which are its own processes.

const (
	taskRoot    = "/var/task"    // the function's code, as on Lambda
	runtimeRoot = "/var/runtime" // Stratus's runtime clients
	spawners    = 4
	cloneFlags  = syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS
	roBindFlags = unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV
)

// systemDirs are the host folders every instance sees read-only, as a
// Lambda base image provides them.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc"}

var devices = []string{"null", "zero", "full", "random", "urandom"}

type isolator struct {
	cg     *cgroups
	base   string
	expose []string
	work   chan spawnJob
	seq    atomic.Int64

	// net, when set, gives each instance a network of its own; hostWork
	// then takes the starts of instances that share the host's, on a
	// spawner that never leaves it.
	net      *network
	hostWork chan spawnJob

	pending atomic.Int64 // starts waiting for a spawner
	wakeMu  sync.Mutex
	wake    chan struct{} // closed and replaced when a start is queued

	uids *uidRange
	mu   sync.Mutex
	free []int // free uid slots
	next int

	spawning  sync.WaitGroup // spawner threads
	closeOnce sync.Once
}

// newIsolator starts the spawners. With serve, instances get networks of
// their own where the API at api is served; netErr says why they cannot.
func newIsolator(base string, expose []string, api netip.AddrPort, serve func(net.Listener)) (iso *isolator, netErr, err error) {
	if os.Geteuid() != 0 {
		return nil, nil, errors.New("not running as root")
	}
	// One cgroup parent per data folder: two servers on one host never
	// sweep each other's instances.
	sum := sha256.Sum256([]byte(base))
	cg, err := detectCgroups("stratus-" + hex.EncodeToString(sum[:6]))
	if err != nil {
		return nil, nil, err
	}
	cg.sweep()
	uids, err := claimUIDs()
	if err != nil {
		return nil, nil, err
	}
	iso = &isolator{cg: cg, base: base, expose: expose, uids: uids, work: make(chan spawnJob), wake: make(chan struct{})}
	n := spawners
	ready := make(chan error, spawners+1)
	if serve == nil {
		netErr = errors.New("no API to serve instances")
	} else if iso.net, netErr = newNetwork((uids.first-uidBase)/maxSlots, api, serve); netErr == nil {
		// Instances that share the host's network start on a spawner
		// that never leaves it.
		iso.hostWork = make(chan spawnJob)
		n++
		iso.spawning.Add(1)
		go iso.spawner(ready, iso.hostWork, true)
	}
	for range spawners {
		iso.spawning.Add(1)
		go iso.spawner(ready, iso.work, false)
	}
	for range n {
		if err := <-ready; err != nil {
			iso.close()
			return nil, nil, err
		}
	}
	return iso, netErr, nil
}

// close stops the spawner threads, once every instance has been torn
// down, and removes the server's cgroups: a clean stop or a failed start
// leaves none behind.
func (iso *isolator) close() {
	iso.closeOnce.Do(func() {
		close(iso.work)
		if iso.hostWork != nil {
			close(iso.hostWork)
		}
		iso.spawning.Wait()
		iso.cg.sweep()
		iso.cg.removeParents()
		if iso.net != nil {
			iso.net.close()
		}
		iso.uids.release()
	})
}

func (iso *isolator) network() *network { return iso.net }

// spawner runs on a thread it never gives back: the thread's mount and
// network namespaces and no_new_privs bit must not leak to other
// goroutines. It takes starts from work; with hostNet it never leaves
// the host's network.
func (iso *isolator) spawner(ready chan<- error, work chan spawnJob, hostNet bool) {
	defer iso.spawning.Done()
	runtime.LockOSThread()
	// Opened while the thread is still in the host's network namespace:
	// the handle stays there, wherever the thread goes.
	host, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		ready <- fmt.Errorf("netlink: %w", err)
		return
	}
	defer host.Close()
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		ready <- fmt.Errorf("unshare mount namespace: %w", err)
		return
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		ready <- fmt.Errorf("make mounts private: %w", err)
		return
	}
	// Inherited by every instance: execve can never raise privileges.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		ready <- fmt.Errorf("no_new_privs: %w", err)
		return
	}
	// Nothing an instance executes can gain a capability, whatever its
	// file capabilities (the set is per thread and inherited).
	if err := dropBoundingSet(); err != nil {
		ready <- err
		return
	}
	// Inherited by every instance too (see seccomp_linux.go).
	if err := installFilter(iso.cg.v2); err != nil {
		ready <- err
		return
	}
	ready <- nil
	tid := unix.Gettid()
	// With cgroup v1 a child can only be born into a cgroup by its parent
	// thread being in it, and the first move into a cgroup waits for an
	// RCU grace period (7 to 20 ms measured). So each spawner moves into
	// the cgroup of its next instance ahead of time, off the cold path.
	var next *instanceCgroup
	// prepare makes the next cgroup and moves this thread into it, which
	// also moves it out of the cgroup it was in: one migration, not two.
	prepare := func() bool {
		if iso.cg.v2 {
			return true
		}
		ic, err := iso.cg.create(fmt.Sprintf("pre-%d", iso.seq.Add(1)), 0)
		if err != nil {
			return false // made on demand instead
		}
		if err := ic.enter(tid); err != nil {
			close(ic.settled)
			ic.remove()
			return false
		}
		next = ic
		return true
	}
	// The part of a root that every instance shares is built ahead too,
	// and so is its network, which this thread then is in.
	var skel string
	var netns *instanceNet
	prepareRoot := func() {
		if skel == "" {
			skel, _ = iso.skeleton() // on failure, built (and reported) at the next start
		}
		if n := iso.network(); n != nil && !hostNet && netns == nil {
			netns, _ = n.build(host) // likewise
		}
	}
	prepare()
	prepareRoot()
	// Roots of pre-started sandboxes built here can only be finished here.
	own := make(chan rootJob)
	gone := make(chan struct{})
	defer close(gone)
	for {
		var job spawnJob
		select {
		case j, ok := <-work:
			if !ok {
				goto closing
			}
			job = j
		case rj := <-own:
			rj.done <- iso.finishWarm(rj.root, rj.codeDir)
			continue
		}
		iso.pending.Add(-1)
		ic := next
		next = nil
		root := skel
		skel = ""
		in := netns
		netns = nil
		var kept string
		cmd, ic, in, err := iso.spawn(tid, job.spec, ic, root, in, host, &kept)
		var warm *warmRoot
		if kept != "" {
			warm = &warmRoot{root: kept, jobs: own, gone: gone}
		}
		job.done <- spawnResult{cmd, ic, in, warm, err}
		if errors.Is(err, errTainted) {
			// Returning with the thread locked ends the thread.
			iso.spawning.Add(1)
			go iso.spawner(make(chan error, 1), work, hostNet)
			return
		}
		if ic == nil || iso.cg.v2 {
			prepare()
			prepareRoot()
			continue
		}
		// Moving a thread between v1 cgroups stalls thread and process
		// creation system-wide for an RCU grace period. A runtime
		// starting now creates threads, so unless more starts wait,
		// give it a head start before moving out.
		if cmd != nil {
			iso.quiet(ic, own)
		}
		if !prepare() {
			ic.leave(tid)
		}
		close(ic.settled)
		prepareRoot()
	}
closing:
	// Closing: leave and remove the cgroup made ahead, and the root.
	if next != nil {
		next.leave(tid)
		close(next.settled)
		next.remove()
	}
	if skel != "" {
		dropRoot(skel)
	}
	if netns != nil {
		netns.close()
	}
}

const settleDelay = 250 * time.Millisecond

// quiet waits for the settle delay, cut short when more starts are
// queued or the instance is being torn down.
// Pre-started sandboxes of this thread's are specialised meanwhile: a
// cold start waits for that.
func (iso *isolator) quiet(ic *instanceCgroup, own <-chan rootJob) {
	iso.wakeMu.Lock()
	wake := iso.wake
	iso.wakeMu.Unlock()
	if iso.pending.Load() > 0 {
		return
	}
	t := time.NewTimer(settleDelay)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-wake:
			return
		case <-ic.hurry:
			return
		case rj := <-own:
			rj.done <- iso.finishWarm(rj.root, rj.codeDir)
		}
	}
}

type spawnJob struct {
	spec Spec
	done chan spawnResult
}

type spawnResult struct {
	cmd  *exec.Cmd
	ic   *instanceCgroup
	net  *instanceNet
	warm *warmRoot
	err  error
}

// warmRoot is the root of a pre-started sandbox, kept in the mount
// namespace of the spawner thread that built it: its task root is a
// shared mount there, so what that thread mounts on it appears in the
// instance too. Only that thread can specialise or drop it.
type warmRoot struct {
	root string
	jobs chan<- rootJob
	gone <-chan struct{} // the spawner thread ended
}

// rootJob puts codeDir on a warm root's task root ("" only drops it).
type rootJob struct {
	root, codeDir string
	done          chan error
}

func (w *warmRoot) run(codeDir string) error {
	done := make(chan error, 1)
	select {
	case w.jobs <- rootJob{root: w.root, codeDir: codeDir, done: done}:
	case <-w.gone:
		return errors.New("sandbox: the spawner of a pre-started sandbox is gone")
	}
	return <-done
}

func (w *warmRoot) specialise(codeDir string) error { return w.run(codeDir) }

func (w *warmRoot) drop() { _ = w.run("") }

// finishWarm, on the spawner thread that owns root: binds codeDir
// read-only at the task root, which propagates into the instance's mount
// namespace; then takes this thread's copy out of the peer group, so that
// nothing done here again (dropping the root) reaches the instance.
func (iso *isolator) finishWarm(root, codeDir string) error {
	task := filepath.Join(root, taskRoot)
	var err error
	if codeDir != "" {
		// Bound read-only first, elsewhere: the bind onto the shared mount
		// copies its flags, and a remount would not propagate.
		staging, e := os.MkdirTemp(iso.base, ".code-")
		if e == nil {
			if e = bindRO(codeDir, staging); e == nil {
				e = unix.Mount(staging, task, "", unix.MS_BIND, "")
				_ = unix.Unmount(staging, unix.MNT_DETACH)
			}
			_ = os.Remove(staging)
		}
		if e != nil {
			err = fmt.Errorf("specialise: %w", e)
		}
	}
	// The whole tree: the shared mount is below the code's, not under it.
	if e := unix.Mount("", root, "", unix.MS_PRIVATE|unix.MS_REC, ""); e != nil {
		// Dropping a root still in the peer group would unmount the
		// instance's task root too: keep it, leaked, rather.
		return fmt.Errorf("specialise: private root: %w", e)
	}
	dropRoot(root)
	return err
}

func (iso *isolator) allocUID() (int, error) {
	iso.mu.Lock()
	defer iso.mu.Unlock()
	if n := len(iso.free); n > 0 {
		slot := iso.free[n-1]
		iso.free = iso.free[:n-1]
		return iso.uids.first + slot, nil
	}
	if iso.next >= maxSlots {
		return -1, errors.New("no free instance uid")
	}
	iso.next++
	return iso.uids.first + iso.next - 1, nil
}

func (iso *isolator) releaseUID(uid int) {
	if uid < iso.uids.first || uid >= iso.uids.first+maxSlots {
		return
	}
	iso.mu.Lock()
	iso.free = append(iso.free, uid-iso.uids.first)
	iso.mu.Unlock()
}

// start builds the instance and starts its runtime on a spawner thread.
func (iso *isolator) start(spec Spec) (spawnResult, error) {
	done := make(chan spawnResult, 1)
	iso.pending.Add(1)
	iso.wakeMu.Lock()
	close(iso.wake)
	iso.wake = make(chan struct{})
	iso.wakeMu.Unlock()
	work := iso.work
	if spec.Layout.HostNetwork && iso.hostWork != nil {
		work = iso.hostWork
	}
	work <- spawnJob{spec: spec, done: done}
	r := <-done
	if r.err != nil {
		if r.ic != nil {
			r.ic.remove()
		}
		return spawnResult{}, r.err
	}
	return r, nil
}

// spawn runs on a spawner thread. ic, when not nil, is a cgroup the thread
// is already in (v1); otherwise one is made now. root, when not empty, is
// a skeleton built ahead; otherwise one is built now. So is in, the
// network the thread is in, unless the instance shares the host's.
func (iso *isolator) spawn(tid int, spec Spec, ic *instanceCgroup, root string, in *instanceNet, host *netlink.Handle, kept *string) (*exec.Cmd, *instanceCgroup, *instanceNet, error) {
	cmd, ic, err := iso.spawnIn(tid, spec, ic, root, &in, host, kept)
	if err != nil && in != nil {
		in.close()
		in = nil
	}
	return cmd, ic, in, err
}

func (iso *isolator) spawnIn(tid int, spec Spec, ic *instanceCgroup, root string, in **instanceNet, host *netlink.Handle, kept *string) (*exec.Cmd, *instanceCgroup, error) {
	if spec.Layout.HostNetwork {
		if *in != nil { // not expected: host starts have a spawner of their own
			(*in).close()
			*in = nil
		}
	} else if *in == nil {
		n := iso.network()
		if n == nil {
			return nil, ic, errors.New("instance network: not isolated")
		}
		var err error
		if *in, err = n.build(host); err != nil {
			return nil, ic, err
		}
	}
	if ic != nil {
		// The limit is in force from the start: should the instance hit it
		// while this thread is still inside, the OOM killer prefers the
		// instance (oom_score_adj 1000, set below) over the server.
		if err := ic.limitV1(spec.MemoryMB); errors.Is(err, unix.EBUSY) {
			// Pages this thread touched while inside (its share of the
			// server's heap) were charged here, more than the limit: the
			// kernel refuses a limit below them. Start in a fresh cgroup.
			ic.leave(tid)
			close(ic.settled)
			ic.remove()
			ic = nil
		} else if err != nil {
			return nil, ic, err
		} else if err := ic.sharesV1(spec.MemoryMB); err != nil {
			return nil, ic, err
		}
	}
	if ic == nil {
		mem := 0 // v1: set once this thread is inside, as for a prepared cgroup
		if iso.cg.v2 {
			mem = spec.MemoryMB
		}
		var err error
		if ic, err = iso.cg.create(spec.ID, mem); err != nil {
			return nil, nil, err
		}
		if iso.cg.v2 {
			// clone3 places the child; nothing more to do.
		} else if err := ic.enter(tid); err != nil {
			return nil, ic, err
		} else if err := ic.limitV1(spec.MemoryMB); err != nil {
			return nil, ic, err
		} else if err := ic.sharesV1(spec.MemoryMB); err != nil {
			return nil, ic, err
		}
	}
	if root == "" {
		var err error
		if root, err = iso.skeleton(); err != nil {
			return nil, ic, err
		}
	}
	// The clone below copies the mounts; this thread's copy goes at once,
	// unless a pre-started sandbox's code is still to come through it.
	defer func() {
		if *kept == "" {
			dropRoot(root)
		}
	}()
	if err := finishRoot(root, spec); err != nil {
		return nil, ic, err
	}
	uid := uint32(spec.Layout.UID)
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Layout.TaskRoot
	cmd.Stdout, cmd.Stderr = spec.Output, spec.Output
	if spec.Setup != nil {
		cmd.ExtraFiles = []*os.File{spec.Setup} // descriptor 3
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Cloneflags: cloneFlags,
		Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}},
		Pdeathsig:  syscall.SIGKILL,
	}
	if iso.cg.v2 {
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, ic.fd
	}
	if err := cmd.Start(); err != nil {
		return nil, ic, fmt.Errorf("start instance: %w", err)
	}
	if err := limitFiles(cmd.Process.Pid, int(uid)); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, ic, err
	}
	// Instances are the first the kernel's OOM killer takes, in their
	// cgroup and on the host; never the server.
	_ = os.WriteFile("/proc/"+strconv.Itoa(cmd.Process.Pid)+"/oom_score_adj", []byte("1000"), 0o644)
	if spec.Warm {
		*kept = root
	}
	return cmd, ic, nil
}

// dropBoundingSet empties the calling thread's capability bounding set.
func dropBoundingSet() error {
	last := unix.CAP_LAST_CAP
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, err)
		}
	}
	return nil
}

// closeOnExecAll marks every descriptor above the standard three
// close-on-exec.
func closeOnExecAll() error {
	err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	if err != unix.ENOSYS && err != unix.EINVAL {
		return fmt.Errorf("close-on-exec: %w", err)
	}
	// Kernels before 5.11: one by one.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("close-on-exec: %w", err)
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	return nil
}

// errTainted: the spawner thread could not take back its own ids.
var errTainted = errors.New("spawner thread lost its identity")

// limitFiles sets an instance's open-file limit, microseconds after its
// exec and before it is sent any work. Limits belong to the whole server
// process, so they cannot be set on the spawner thread for the clone to
// inherit; and prlimit on another process needs CAP_SYS_RESOURCE, which
// root in a container often lacks, or the caller to have the target's
// ids. So this thread, which runs nothing else, takes the instance's ids
// for the call (keeping root as its saved uid) and then takes back its own.
func limitFiles(pid, id int) error {
	ruid, euid, suid := unix.Getresuid()
	rgid, egid, sgid := unix.Getresgid()
	if err := setThreadIDs(unix.SYS_SETRESGID, id, id, sgid); err != nil {
		return fmt.Errorf("limit instance files: %w", err)
	}
	err := setThreadIDs(unix.SYS_SETRESUID, id, id, suid)
	if err == nil {
		lim := unix.Rlimit{Cur: maxFiles, Max: maxFiles}
		err = unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil)
		// The saved uid lets the thread return, its capabilities with it.
		if rerr := setThreadIDs(unix.SYS_SETRESUID, ruid, euid, suid); rerr != nil {
			return fmt.Errorf("%w: %w", errTainted, rerr)
		}
	}
	if rerr := setThreadIDs(unix.SYS_SETRESGID, rgid, egid, sgid); rerr != nil {
		return fmt.Errorf("%w: %w", errTainted, rerr)
	}
	if err != nil {
		return fmt.Errorf("limit instance files: %w", err)
	}
	return nil
}

// setThreadIDs changes the ids of the calling thread alone; the wrappers
// in syscall change every thread of the process.
func setThreadIDs(trap uintptr, r, e, s int) error {
	if _, _, errno := unix.RawSyscall(trap, uintptr(r), uintptr(e), uintptr(s)); errno != 0 {
		return errno
	}
	return nil
}

// skeleton builds, in this thread's mount namespace, the part of an
// instance's root that every instance shares: a read-only tmpfs with the
// host's system folders bound read-only, /proc, /dev, and the mount points
// finishRoot fills. It is built ahead of each start, off the cold path.
func (iso *isolator) skeleton() (string, error) {
	root, err := os.MkdirTemp(iso.base, ".root-")
	if err != nil {
		return "", fmt.Errorf("instance root: %w", err)
	}
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,mode=0755"); err != nil {
		_ = os.Remove(root)
		return "", fmt.Errorf("mount instance root: %w", err)
	}
	if err := iso.buildSkeleton(root); err != nil {
		dropRoot(root)
		return "", err
	}
	return root, nil
}

// dropRoot removes a root from this thread's mount namespace; an instance
// cloned from it keeps its own copy.
func dropRoot(root string) {
	_ = unix.Unmount(root, unix.MNT_DETACH)
	_ = os.Remove(root)
}

func (iso *isolator) buildSkeleton(root string) error {
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(d)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, filepath.Join(root, d)); err != nil {
				return err
			}
			continue
		}
		if err := bindRO(d, filepath.Join(root, d)); err != nil {
			return err
		}
	}
	for _, p := range iso.expose {
		if err := bindRO(p, filepath.Join(root, p)); err != nil {
			return err
		}
	}
	// Mount points of what differs per instance: a read-only root cannot
	// grow them later.
	for _, d := range []string{taskRoot, runtimeRoot, "/tmp", "/opt"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	proc := filepath.Join(root, "proc")
	if err := os.Mkdir(proc, 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "hidepid=2"); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if err := buildDev(filepath.Join(root, "dev")); err != nil {
		return err
	}
	if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("read-only root: %w", err)
	}
	return nil
}

// finishRoot adds to a skeleton what is the instance's own: its code, the
// runtime, a private /tmp and /dev/shm owned by its uid.
func finishRoot(root string, spec Spec) error {
	task := filepath.Join(root, taskRoot)
	if spec.Warm {
		// Empty for now, and a shared mount: the instance's copy of it
		// receives what this thread mounts on it later (finishWarm).
		if err := unix.Mount(task, task, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("task root: %w", err)
		}
		if err := unix.Mount("", task, "", unix.MS_SHARED, ""); err != nil {
			return fmt.Errorf("shared task root: %w", err)
		}
	} else if err := bindRO(spec.CodeDir, task); err != nil {
		return err
	}
	if err := bindRO(spec.RuntimeDir, filepath.Join(root, runtimeRoot)); err != nil {
		return err
	}
	if spec.OptDir != "" {
		if err := bindRO(spec.OptDir, filepath.Join(root, "opt")); err != nil {
			return err
		}
	}
	if spec.NodeSDK != "" {
		// The mount point is in the runtime clients' folder (runtimes makes
		// it): the root is read-only by now.
		if err := bindRO(spec.NodeSDK, filepath.Join(root, runtimeRoot, SDKFolder)); err != nil {
			return err
		}
	}
	uid := strconv.Itoa(spec.Layout.UID)
	// Files as well as bytes are bounded, as on a disk (one inode per
	// 8 KB): empty files cost the kernel memory too.
	opts := fmt.Sprintf("size=%dm,nr_inodes=%d,mode=0700,uid=%s,gid=%s", spec.TmpMB, tmpInodes(spec.TmpMB), uid, uid)
	if err := unix.Mount("tmpfs", filepath.Join(root, "tmp"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount /tmp: %w", err)
	}
	if err := unix.Mount("tmpfs", filepath.Join(root, "dev", "shm"), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64m,nr_inodes=8192,mode=0700,uid="+uid+",gid="+uid); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	return nil
}

func buildDev(dev string) error {
	if err := os.Mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range devices {
		p := filepath.Join(dev, d)
		// Created read-only: a file open for writing, even for an instant in
		// a child another spawner is forking, makes the read-only remount
		// below fail with EBUSY.
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o666)
		if err != nil {
			return err
		}
		f.Close()
		if err := unix.Mount("/dev/"+d, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", d, err)
		}
	}
	for name, target := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"} {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(dev, "shm"), 0o755); err != nil { // mounted by finishRoot
		return err
	}
	if err := unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("read-only /dev: %w", err)
	}
	return nil
}

// bindRO makes src visible read-only at dst, without set-uid or devices.
func bindRO(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if err := unix.Mount("", dst, "", roBindFlags, ""); err != nil {
		return fmt.Errorf("read-only %s: %w", src, err)
	}
	return nil
}

// covered reports whether p is inside one of the system folders.
func covered(p string) bool {
	for _, d := range systemDirs {
		real := d
		if r, err := filepath.EvalSymlinks(d); err == nil {
			real = r
		}
		if p == real || strings.HasPrefix(p, real+"/") {
			return true
		}
	}
	return false
}
