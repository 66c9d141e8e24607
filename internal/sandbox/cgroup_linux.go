package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cpuPerVCPU is the memory size that buys one full vCPU on Lambda.
const cpuPerVCPU = 1769

// maxPids bounds the processes and threads of one instance, as Lambda's 1,024.
const maxPids = 1024

// maxFiles is an instance's open-file limit, Lambda's quota of 1,024
// file descriptors.
const maxFiles = 1024

// tmpInodes is how many files and folders an instance's /tmp of mb
// megabytes holds.
func tmpInodes(mb int) int { return mb * 128 }

// cgroups creates one cgroup per instance under the server's own, in v1
// (one folder per controller) or v2 (one unified folder).
type cgroups struct {
	v2 bool
	// v1: controller name -> folder holding our instance cgroups, and the
	// folder the server itself is in (to move the spawner thread back).
	parents map[string]string
	homes   map[string]string
	// v2: the folder holding instance cgroups.
	parent string
}

var v1Controllers = []string{"memory", "pids", "cpu"}

// detectCgroups finds a cgroup hierarchy we may create children in, or
// says what is missing.
func detectCgroups(name string) (*cgroups, error) {
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	v1paths := map[string]string{} // controller -> our path in its hierarchy
	v2path := ""
	hasV2 := false
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			v2path, hasV2 = parts[2], true
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			v1paths[c] = parts[2]
		}
	}
	v1mounts, v2mount := cgroupMounts(mounts)

	// Prefer v1 when it carries the controllers (hybrid hosts keep them there).
	if v1mounts["memory"] != "" {
		cg := &cgroups{parents: map[string]string{}, homes: map[string]string{}}
		for _, c := range v1Controllers {
			mnt := v1mounts[c]
			if mnt == "" {
				return nil, fmt.Errorf("cgroup v1 controller %q is not mounted", c)
			}
			home := filepath.Join(mnt, v1paths[c])
			parent := filepath.Join(home, name)
			if err := os.MkdirAll(parent, 0o755); err != nil {
				return nil, fmt.Errorf("cgroup v1 %s: %w", c, err)
			}
			cg.parents[c], cg.homes[c] = parent, home
		}
		// The instances' parent competes for CPU as one task beside each
		// of the host's (the server's threads, a load generator): at the
		// default share, all instances together would get one task's CPU
		// under contention, and their answers would queue behind the
		// server that waits for them. As much as NumCPU tasks, they can
		// use the machine; the server still gets its turn.
		_ = os.WriteFile(filepath.Join(cg.parents["cpu"], "cpu.shares"), []byte(strconv.Itoa(1024*runtime.NumCPU())), 0o644)
		return cg, nil
	}
	if hasV2 && v2mount != "" {
		return setupV2(filepath.Join(v2mount, v2path), name)
	}
	return nil, errors.New("no usable cgroup hierarchy (need v1 memory, pids, cpu or v2 with those controllers)")
}

// cgroupMounts maps v1 controllers to their mount points and finds the v2 mount.
func cgroupMounts(mountinfo []byte) (v1 map[string]string, v2 string) {
	v1 = map[string]string{}
	for _, line := range strings.Split(string(mountinfo), "\n") {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		sep := strings.Index(line, " - ")
		if sep < 0 {
			continue
		}
		pre, post := strings.Fields(line[:sep]), strings.Fields(line[sep+3:])
		if len(pre) < 5 || len(post) < 3 {
			continue
		}
		switch post[0] {
		case "cgroup2":
			v2 = pre[4]
		case "cgroup":
			for _, opt := range strings.Split(post[2], ",") {
				for _, c := range v1Controllers {
					if opt == c {
						v1[c] = pre[4]
					}
				}
			}
		}
	}
	return v1, v2
}

// setupV2 prepares home for children with controllers. A v2 cgroup with
// processes cannot delegate controllers, so the server moves into a leaf
// of its own first.
func setupV2(home, name string) (*cgroups, error) {
	leaf := filepath.Join(home, "server")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	procs, _ := os.ReadFile(filepath.Join(home, "cgroup.procs"))
	for _, pid := range strings.Fields(string(procs)) {
		_ = os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(pid), 0o644)
	}
	if err := os.WriteFile(filepath.Join(home, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0o644); err != nil {
		return nil, fmt.Errorf("cgroup v2: enable controllers: %w", err)
	}
	parent := filepath.Join(home, name)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory +pids +cpu"), 0o644); err != nil {
		return nil, fmt.Errorf("cgroup v2: enable controllers: %w", err)
	}
	// As in v1 (see detectCgroups): the instances together weigh as much
	// as NumCPU servers.
	_ = os.WriteFile(filepath.Join(parent, "cpu.weight"), []byte(strconv.Itoa(min(10000, 100*runtime.NumCPU()))), 0o644)
	return &cgroups{v2: true, parent: parent}, nil
}

// instanceCgroup is the cgroup of one instance.
type instanceCgroup struct {
	cg      *cgroups
	id      string
	settled chan struct{} // closed once the spawner thread has left (v1)
	hurry   chan struct{} // closed by teardown: leave now
	hurried sync.Once
	dirs    []string // v1: one per controller; v2: one
	peak    *os.File // kept open: one pread per read
	fd      int      // v2: folder fd for clone3 CLONE_INTO_CGROUP
}

func (c *cgroups) create(id string, memoryMB int) (*instanceCgroup, error) {
	ic := &instanceCgroup{cg: c, id: id, fd: -1}
	mem := strconv.FormatInt(int64(memoryMB)<<20, 10)
	if c.v2 {
		dir := filepath.Join(c.parent, id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		ic.dirs = []string{dir}
		weight := strconv.Itoa(max(1, min(10000, memoryMB*100/cpuPerVCPU)))
		// Born into the cgroup by clone3, the instance is under its limits from its first instruction.
		for file, val := range map[string]string{"memory.max": mem, "memory.swap.max": "0", "pids.max": strconv.Itoa(maxPids), "cpu.weight": weight} {
			if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0o644); err != nil && file != "memory.swap.max" {
				ic.remove()
				return nil, fmt.Errorf("cgroup %s: %w", file, err)
			}
		}
		fd, err := syscall.Open(dir, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			ic.remove()
			return nil, fmt.Errorf("open cgroup: %w", err)
		}
		ic.fd = fd
		ic.settled = make(chan struct{})
		close(ic.settled)
		return ic, nil
	}
	settings := map[string][][2]string{
		"pids": {{"pids.max", strconv.Itoa(maxPids)}},
	}
	if memoryMB > 0 {
		settings["memory"] = [][2]string{{"memory.limit_in_bytes", mem}, {"memory.memsw.limit_in_bytes", mem}}
		settings["cpu"] = [][2]string{{"cpu.shares", cpuShares(memoryMB)}}
	}
	for _, ctrl := range v1Controllers {
		dir := filepath.Join(c.parents[ctrl], id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			ic.remove()
			return nil, fmt.Errorf("create cgroup: %w", err)
		}
		ic.dirs = append(ic.dirs, dir)
		for _, kv := range settings[ctrl] {
			err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0o644)
			// memsw exists only with swap accounting; without swap there is nothing to escape to.
			if err != nil && kv[0] != "memory.memsw.limit_in_bytes" {
				ic.remove()
				return nil, fmt.Errorf("cgroup %s: %w", kv[0], err)
			}
		}
	}
	ic.settled = make(chan struct{})
	ic.hurry = make(chan struct{})
	return ic, nil
}

func cpuShares(memoryMB int) string { return strconv.Itoa(max(2, memoryMB*1024/cpuPerVCPU)) }

// limitV1 applies an instance's memory limit and CPU share to a cgroup
// made ahead of time without them.
func (ic *instanceCgroup) limitV1(memoryMB int) error {
	mem := []byte(strconv.FormatInt(int64(memoryMB)<<20, 10))
	if err := os.WriteFile(filepath.Join(ic.dirs[0], "memory.limit_in_bytes"), mem, 0o644); err != nil {
		return fmt.Errorf("memory limit: %w", err)
	}
	_ = os.WriteFile(filepath.Join(ic.dirs[0], "memory.memsw.limit_in_bytes"), mem, 0o644)
	return nil
}

// resize sets the memory limit and CPU weight of a running instance (a
// pre-started sandbox taken by a function). In v1 the limit with swap
// must stay at or above the limit, so the order depends on the direction.
func (ic *instanceCgroup) resize(memoryMB int) error {
	mem := []byte(strconv.FormatInt(int64(memoryMB)<<20, 10))
	if ic.cg.v2 {
		if err := os.WriteFile(filepath.Join(ic.dirs[0], "memory.max"), mem, 0o644); err != nil {
			return fmt.Errorf("memory limit: %w", err)
		}
		weight := strconv.Itoa(max(1, min(10000, memoryMB*100/cpuPerVCPU)))
		return os.WriteFile(filepath.Join(ic.dirs[0], "cpu.weight"), []byte(weight), 0o644)
	}
	limit, memsw := filepath.Join(ic.dirs[0], "memory.limit_in_bytes"), filepath.Join(ic.dirs[0], "memory.memsw.limit_in_bytes")
	if err := os.WriteFile(limit, mem, 0o644); err != nil {
		_ = os.WriteFile(memsw, mem, 0o644) // raising: the swap limit first
		if err := os.WriteFile(limit, mem, 0o644); err != nil {
			return fmt.Errorf("memory limit: %w", err)
		}
	}
	_ = os.WriteFile(memsw, mem, 0o644)
	return ic.sharesV1(memoryMB)
}

func (ic *instanceCgroup) sharesV1(memoryMB int) error {
	if err := os.WriteFile(filepath.Join(ic.dirs[2], "cpu.shares"), []byte(cpuShares(memoryMB)), 0o644); err != nil {
		return fmt.Errorf("cpu share: %w", err)
	}
	return nil
}

// enter moves the calling thread into the instance's v1 cgroups, so a
// child cloned by it starts inside them. leave moves it back.
func (ic *instanceCgroup) enter(tid int) error {
	t := []byte(strconv.Itoa(tid))
	for _, dir := range ic.dirs {
		if err := os.WriteFile(filepath.Join(dir, "tasks"), t, 0o644); err != nil {
			ic.leave(tid)
			return fmt.Errorf("enter cgroup: %w", err)
		}
	}
	return nil
}

func (ic *instanceCgroup) leave(tid int) {
	t := []byte(strconv.Itoa(tid))
	for _, ctrl := range v1Controllers {
		_ = os.WriteFile(filepath.Join(ic.cg.homes[ctrl], "tasks"), t, 0o644)
	}
}

func (ic *instanceCgroup) memoryDir() string { return ic.dirs[0] } // memory is first in v1

// peakMB is the instance's peak memory use as the cgroup counted it.
func (ic *instanceCgroup) peakMB() int {
	if ic.peak == nil {
		name := "memory.max_usage_in_bytes"
		if ic.cg.v2 {
			name = "memory.peak"
		}
		f, err := os.Open(filepath.Join(ic.memoryDir(), name))
		if err != nil {
			return 0
		}
		ic.peak = f
	}
	var buf [32]byte
	n, _ := ic.peak.ReadAt(buf[:], 0)
	v, _ := strconv.ParseInt(string(bytes.TrimSpace(buf[:n])), 10, 64)
	return int((v + (1 << 20) - 1) >> 20)
}

// oomKilled reports whether the kernel killed a process of the instance
// for exceeding its memory limit.
func (ic *instanceCgroup) oomKilled() bool {
	name := "memory.oom_control"
	if ic.cg.v2 {
		name = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(ic.memoryDir(), name))
	if err != nil {
		return false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
			return true
		}
	}
	return false
}

// kill stops every process in the cgroup: the namespace's end normally
// took them already, this catches anything that was not in it.
func (ic *instanceCgroup) kill() {
	if ic.hurry != nil {
		ic.hurried.Do(func() { close(ic.hurry) })
	}
	if ic.settled != nil {
		<-ic.settled // until then a thread of the server is inside
	}
	if ic.cg.v2 {
		_ = os.WriteFile(filepath.Join(ic.dirs[0], "cgroup.kill"), []byte("1"), 0o644)
		return
	}
	self := os.Getpid()
	for range 10 {
		b, _ := os.ReadFile(filepath.Join(ic.dirs[0], "cgroup.procs"))
		pids := strings.Fields(string(b))
		if len(pids) == 0 || (len(pids) == 1 && pids[0] == strconv.Itoa(self)) {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil && pid != self {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// remove deletes the cgroup once its processes are gone.
func (ic *instanceCgroup) remove() {
	if ic.settled != nil {
		<-ic.settled
	}
	if ic.peak != nil {
		_ = ic.peak.Close()
	}
	if ic.fd >= 0 {
		_ = syscall.Close(ic.fd)
	}
	for _, dir := range ic.dirs {
		for i := 0; i < 200; i++ {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(5 * time.Millisecond) // exiting processes leave the cgroup asynchronously
		}
	}
}

// sweep removes instance cgroups left by a server that died: their
// processes died with it (parent-death signal), the folders did not.
func (c *cgroups) sweep() {
	var parents []string
	if c.v2 {
		parents = []string{c.parent}
	} else {
		for _, ctrl := range v1Controllers {
			parents = append(parents, c.parents[ctrl])
		}
	}
	for _, p := range parents {
		entries, _ := os.ReadDir(p)
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			ic := &instanceCgroup{cg: c, dirs: []string{filepath.Join(p, e.Name())}, fd: -1}
			ic.kill()
			ic.remove()
		}
	}
}

// removeParents removes the folders holding this server's instance
// cgroups, once they are empty.
func (c *cgroups) removeParents() {
	if c.v2 {
		_ = os.Remove(c.parent)
		return
	}
	for _, ctrl := range v1Controllers {
		_ = os.Remove(c.parents[ctrl])
	}
}
