package sandbox

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A seccomp filter on every spawner thread, inherited by each instance it
// clones and kept across exec: system calls that only serve to attack the
// kernel or the host fail with EPERM. Instances have no capabilities, so
// most of these would fail anyway; the filter shrinks the kernel code an
// instance can reach (user namespaces, BPF, perf, keyrings, io_uring,
// userfaultfd). The spawner itself needs none of them: mount, chroot and
// clone with the instance's namespaces stay allowed.

// deniedSyscalls fail with EPERM, on every architecture.
var deniedSyscalls = []uintptr{
	unix.SYS_PTRACE, unix.SYS_PROCESS_VM_READV, unix.SYS_PROCESS_VM_WRITEV, unix.SYS_KCMP,
	unix.SYS_KEXEC_LOAD, unix.SYS_KEXEC_FILE_LOAD, unix.SYS_REBOOT,
	unix.SYS_INIT_MODULE, unix.SYS_FINIT_MODULE, unix.SYS_DELETE_MODULE,
	unix.SYS_BPF, unix.SYS_PERF_EVENT_OPEN, unix.SYS_USERFAULTFD,
	unix.SYS_KEYCTL, unix.SYS_ADD_KEY, unix.SYS_REQUEST_KEY,
	unix.SYS_IO_URING_SETUP, unix.SYS_IO_URING_ENTER, unix.SYS_IO_URING_REGISTER,
	unix.SYS_SETNS, unix.SYS_PIVOT_ROOT,
	unix.SYS_FSOPEN, unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT,
	unix.SYS_OPEN_BY_HANDLE_AT, unix.SYS_NAME_TO_HANDLE_AT,
	unix.SYS_SWAPON, unix.SYS_SWAPOFF, unix.SYS_ACCT, unix.SYS_QUOTACTL, unix.SYS_QUOTACTL_FD,
	unix.SYS_SETTIMEOFDAY, unix.SYS_CLOCK_SETTIME, unix.SYS_CLOCK_ADJTIME,
	unix.SYS_SYSLOG, unix.SYS_VHANGUP, unix.SYS_LOOKUP_DCOOKIE, unix.SYS_NFSSERVCTL,
}

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
	offArg0 = 16 // low half on little-endian machines
)

func stmt(code uint16, k uint32) unix.SockFilter { return unix.SockFilter{Code: code, K: k} }

func jump(code uint16, k uint32, jt, jf uint8) unix.SockFilter {
	return unix.SockFilter{Code: code, K: k, Jt: jt, Jf: jf}
}

// filterProgram builds the filter. withClone3 keeps clone3 (cgroup v2
// starts instances with it, CLONE_INTO_CGROUP); otherwise clone3 answers
// ENOSYS, as on kernels without it, so that the C libraries fall back to
// clone, whose flags the filter can read.
func filterProgram(withClone3 bool) []unix.SockFilter {
	const (
		ld    = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jge   = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
		jset  = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
		ret   = unix.BPF_RET | unix.BPF_K
		allow = unix.SECCOMP_RET_ALLOW
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)&unix.SECCOMP_RET_DATA
	)
	enosys := unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)&unix.SECCOMP_RET_DATA
	p := []unix.SockFilter{
		// Another ABI (32-bit calls on a 64-bit kernel) has other numbers.
		stmt(ld, offArch),
		jump(jeq, nativeArch, 1, 0),
		stmt(ret, eperm),
		stmt(ld, offNr),
	}
	if abiBit != 0 { // x32 calls on amd64 carry this bit
		p = append(p, jump(jge, abiBit, 0, 1), stmt(ret, eperm))
	}
	for _, nr := range append(deniedSyscalls, archDenied...) {
		p = append(p, jump(jeq, uint32(nr), 0, 1), stmt(ret, eperm))
	}
	if !withClone3 {
		p = append(p, jump(jeq, uint32(unix.SYS_CLONE3), 0, 1), stmt(ret, enosys))
	}
	// clone and unshare may not make a user namespace.
	for _, nr := range []uintptr{unix.SYS_CLONE, unix.SYS_UNSHARE} {
		p = append(p,
			jump(jeq, uint32(nr), 0, 4),
			stmt(ld, offArg0),
			jump(jset, unix.CLONE_NEWUSER, 0, 1),
			stmt(ret, eperm),
			stmt(ret, allow),
		)
	}
	return append(p, stmt(ret, allow))
}

// installFilter puts the filter on the calling thread only (no TSYNC):
// the spawner threads, whose children inherit it. no_new_privs must be set.
func installFilter(withClone3 bool) error {
	if nativeArch == 0 {
		return nil // no filter for this architecture yet
	}
	prog := filterProgram(withClone3)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("install seccomp filter: %w", err)
	}
	return nil
}
