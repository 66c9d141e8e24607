package recursion

import (
	"context"
	"strings"
	"testing"
)

func TestLineage(t *testing.T) {
	root := "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
	h := root
	for i := 1; i <= 20; i++ {
		h = Next(h, "loop")
		if d := Depth(h, "loop"); d != i {
			t.Fatalf("after %d runs depth %d (%s)", i, d, h)
		}
	}
	if !strings.HasPrefix(h, root+";Lineage=") {
		t.Errorf("other fields not kept: %s", h)
	}
	// Another function's count is its own.
	h2 := Next(h, "other")
	if Depth(h2, "other") != 1 || Depth(h2, "loop") != 20 {
		t.Errorf("two functions: %s", h2)
	}
	for _, tc := range []struct {
		name, header string
		depth        int
	}{
		{"empty", "", 0},
		{"no lineage", root, 0},
		{"garbage lineage", root + ";Lineage=zz", 0},
		{"negative", root + ";Lineage=" + key("f") + ":-4", 0},
		{"spaces", "Root=1-x; Lineage=" + key("f") + ":3", 3},
		{"too long", strings.Repeat("x", 2000) + ";Lineage=" + key("f") + ":9", 0},
	} {
		if d := Depth(tc.header, "f"); d != tc.depth {
			t.Errorf("%s: depth %d, want %d", tc.name, d, tc.depth)
		}
	}
	if Stops(Limit-1, Terminate) || !Stops(Limit, Terminate) || !Stops(Limit, "") || Stops(Limit+5, Allow) {
		t.Error("Stops")
	}
	if Trace(WithTrace(context.Background(), "Root=1")) != "Root=1" || Trace(context.Background()) != "" {
		t.Error("context")
	}
}

func TestLineageBounded(t *testing.T) {
	h := "Root=1-a"
	for i := 0; i < 50; i++ {
		h = Next(h, "fn"+strings.Repeat("x", i))
	}
	if n := strings.Count(h, "|") + 1; n != maxEntries {
		t.Errorf("%d entries", n)
	}
}

func FuzzLineage(f *testing.F) {
	f.Add("Root=1-5759e988-bd862e3fe1be46a994272793;Lineage=12345678:3|abcdef01:1", "fn")
	f.Add(";;;Lineage=:|:", "")
	f.Fuzz(func(t *testing.T, header, fn string) {
		d := Depth(header, fn)
		n := Next(header, fn)
		if d < 999 && Depth(n, fn) != d+1 && len(header) <= maxHeader {
			t.Fatalf("Next(%q) = %q: depth %d after %d", header, n, Depth(n, fn), d)
		}
	})
}
