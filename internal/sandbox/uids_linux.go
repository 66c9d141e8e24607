package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Instance uids come in ranges of maxSlots, one range per server on the
// host, so that two servers never run instances as the same uid: the uid
// is what hides one instance's processes from another (hidepid) and what
// the Runtime API's peer check compares. A server holds its range with an
// advisory lock on a file in a host-wide folder; the kernel drops the lock
// when the server dies, however it dies.
const (
	uidBase   = 900000
	maxSlots  = 65536
	maxRanges = 4096 // up to uid 268,435,456 + uidBase, under every kernel's limit
)

// rangesDir holds the lock files. /run is cleared at boot, when every
// range is free again.
var rangesDir = "/run/stratus/uid-ranges"

// uidRange is a range of instance uids this server holds.
type uidRange struct {
	first int
	lock  *os.File
}

// claimUIDs takes the first range no live server holds and no process
// still runs in (an instance that outlived a crashed server keeps its
// range out of use until it is gone).
func claimUIDs() (*uidRange, error) {
	if err := os.MkdirAll(rangesDir, 0o700); err != nil {
		return nil, fmt.Errorf("instance uid ranges: %w", err)
	}
	var inUse map[int]bool
	for r := range maxRanges {
		f, err := os.OpenFile(filepath.Join(rangesDir, strconv.Itoa(r)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("instance uid ranges: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				continue // another live server's
			}
			return nil, fmt.Errorf("instance uid ranges: lock: %w", err)
		}
		if inUse == nil {
			inUse = runningRanges()
		}
		if inUse[r] {
			f.Close()
			continue
		}
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		return &uidRange{first: uidBase + r*maxSlots, lock: f}, nil
	}
	return nil, errors.New("instance uid ranges: every range is in use")
}

// release gives the range back.
func (u *uidRange) release() {
	if u != nil && u.lock != nil {
		_ = u.lock.Close()
	}
}

// runningRanges are the ranges some process on the host runs as.
func runningRanges() map[int]bool {
	out := map[int]bool{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		i := bytes.Index(b, []byte("\nUid:"))
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+5:])
		if len(f) == 0 {
			continue
		}
		if uid, err := strconv.Atoi(string(f[0])); err == nil && uid >= uidBase && uid < uidBase+maxRanges*maxSlots {
			out[(uid-uidBase)/maxSlots] = true
		}
	}
	return out
}
