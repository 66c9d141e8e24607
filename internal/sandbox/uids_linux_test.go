package sandbox

import (
	"os"
	"testing"
)

func TestClaimUIDs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("locks under a root-owned folder; the e2e sandbox tests run as root")
	}
	old := rangesDir
	rangesDir = t.TempDir()
	defer func() { rangesDir = old }()
	busy := runningRanges()
	a, err := claimUIDs()
	if err != nil {
		t.Fatal(err)
	}
	b, err := claimUIDs()
	if err != nil {
		t.Fatal(err)
	}
	if a.first == b.first || (a.first-uidBase)%maxSlots != 0 || (b.first-uidBase)%maxSlots != 0 {
		t.Fatalf("two claims: %d and %d", a.first, b.first)
	}
	for _, r := range []*uidRange{a, b} {
		if busy[(r.first-uidBase)/maxSlots] {
			t.Fatalf("claimed range %d, in which processes run", r.first)
		}
	}
	a.release()
	c, err := claimUIDs()
	if err != nil {
		t.Fatal(err)
	}
	if c.first != a.first {
		t.Fatalf("a released range is not reused: got %d, want %d", c.first, a.first)
	}
	b.release()
	c.release()
}
