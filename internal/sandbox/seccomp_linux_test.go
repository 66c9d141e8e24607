package sandbox

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// run interprets the filter's few instructions on one system call.
func run(t *testing.T, prog []unix.SockFilter, arch uint32, nr int, arg0 uint64) uint32 {
	t.Helper()
	data := make([]byte, 64)
	binary.LittleEndian.PutUint32(data[offNr:], uint32(nr))
	binary.LittleEndian.PutUint32(data[offArch:], arch)
	binary.LittleEndian.PutUint64(data[offArg0:], arg0)
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			a = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			var ok bool
			switch in.Code &^ (unix.BPF_JMP | unix.BPF_K) {
			case unix.BPF_JEQ:
				ok = a == in.K
			case unix.BPF_JGE:
				ok = a >= in.K
			default:
				ok = a&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("unexpected instruction %+v", in)
		}
	}
	t.Fatal("fell off the end of the filter")
	return 0
}

func TestFilterProgram(t *testing.T) {
	if nativeArch == 0 {
		t.Skip("no filter on this architecture")
	}
	eperm := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM))
	enosys := uint32(unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS))
	allow := uint32(unix.SECCOMP_RET_ALLOW)
	type filterCase struct {
		name   string
		clone3 bool
		arch   uint32
		nr     int
		arg0   uint64
		want   uint32
	}
	cases := []filterCase{
		{"read", false, nativeArch, unix.SYS_READ, 0, allow},
		{"execve", false, nativeArch, unix.SYS_EXECVE, 0, allow},
		{"mount (the spawner's)", false, nativeArch, unix.SYS_MOUNT, 0, allow},
		{"ptrace", false, nativeArch, unix.SYS_PTRACE, 0, eperm},
		{"bpf", false, nativeArch, unix.SYS_BPF, 0, eperm},
		{"io_uring_setup", false, nativeArch, unix.SYS_IO_URING_SETUP, 0, eperm},
		{"clone of a thread", false, nativeArch, unix.SYS_CLONE, unix.CLONE_VM | unix.CLONE_THREAD, allow},
		{"clone into namespaces", false, nativeArch, unix.SYS_CLONE, unix.CLONE_NEWNS | unix.CLONE_NEWPID, allow},
		{"clone a user namespace", false, nativeArch, unix.SYS_CLONE, unix.CLONE_NEWUSER, eperm},
		{"unshare a user namespace", false, nativeArch, unix.SYS_UNSHARE, unix.CLONE_NEWUSER | unix.CLONE_NEWNS, eperm},
		{"unshare a mount namespace", false, nativeArch, unix.SYS_UNSHARE, unix.CLONE_NEWNS, allow},
		{"clone3 on v1", false, nativeArch, unix.SYS_CLONE3, 0, enosys},
		{"clone3 on v2", true, nativeArch, unix.SYS_CLONE3, 0, allow},
		{"another ABI", false, nativeArch + 1, unix.SYS_READ, 0, eperm},
	}
	if abiBit != 0 {
		cases = append(cases, filterCase{"x32 call", false, nativeArch, abiBit | unix.SYS_READ, 0, eperm})
	}
	for _, c := range cases {
		prog := filterProgram(c.clone3)
		if len(prog) > 4096 {
			t.Fatalf("filter of %d instructions", len(prog))
		}
		if got := run(t, prog, c.arch, c.nr, c.arg0); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
}
