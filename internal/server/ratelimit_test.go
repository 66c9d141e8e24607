package server

import (
	"testing"
	"time"
)

func TestCallerLimits(t *testing.T) {
	c := newCallerLimits(5) // bursts of 10
	now := time.Unix(1000, 0)
	for i := range 10 {
		if ok, _ := c.allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := c.allow("a", now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: %v, wait %v", ok, wait)
	}
	if ok, _ := c.allow("b", now); !ok {
		t.Fatal("another caller was throttled by the first")
	}
	// A refused request takes no token: after 200 ms one more is allowed.
	if ok, _ := c.allow("a", now.Add(200*time.Millisecond)); !ok {
		t.Fatal("no token after its interval")
	}
	if ok, _ := c.allow("a", now.Add(200*time.Millisecond)); ok {
		t.Fatal("two tokens after one interval")
	}
}
