package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestChooseLimits(t *testing.T) {
	tests := []struct {
		free, used    int64
		store, logsMB int64
	}{
		{80 << 20, 0, 60 << 20, 7},        // a small disk: the log stream gets an eighth
		{100 << 30, 0, 75 << 30, 1024},    // a large one: the log stream's 1 GiB
		{10 << 20, 30 << 20, 30 << 20, 3}, // what the store holds counts as room
	}
	for _, tt := range tests {
		l := chooseLimits(tt.free, tt.used)
		if l.MaxStore != tt.store || l.LogsBytes>>20 != tt.logsMB || l.LogsBytes > l.MaxStore {
			t.Errorf("free %d used %d: %+v", tt.free, tt.used, l)
		}
	}
}

// TestFullDiskAndRecovery: below the reserve writes are refused as a store
// outage; JetStream that disabled itself after a failed write is enabled
// again once there is room, and writes work without a restart.
func TestFullDiskAndRecovery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := Open(ctx, Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	publish := func() error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := st.JS.Publish(pctx, AsyncSubject+"fn", []byte(`{}`))
		return err
	}
	if err := st.Writable(); err != nil {
		t.Fatalf("fresh store: %v", err)
	}
	if err := publish(); err != nil {
		t.Fatal(err)
	}

	st.space.free = func(string) (int64, error) { return 1 << 20, nil }
	st.space.check()
	err = st.Writable()
	if !errors.Is(err, ErrNoSpace) || !Unavailable(err) || Explain(err) == Explain(errors.New("x")) {
		t.Fatalf("nearly full disk: %v", err)
	}

	// What NATS does when a write fails for want of space.
	if err := st.srv.ShutdownJetStream(); err != nil {
		t.Fatal(err)
	}
	if err := publish(); err == nil || !Unavailable(err) {
		t.Fatalf("publish with JetStream disabled: %v (unavailable %v)", err, Unavailable(err))
	}
	st.space.check() // still full: stays disabled
	if st.srv.JetStreamEnabled() {
		t.Fatal("JetStream enabled again while the disk is full")
	}

	st.space.free = freeBytes
	st.space.check()
	if err := st.Writable(); err != nil || !st.srv.JetStreamEnabled() {
		t.Fatalf("after space returned: %v, enabled %v", err, st.srv.JetStreamEnabled())
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := publish()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after recovery: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	info, err := st.JS.Stream(ctx, AsyncStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 2 {
		t.Fatalf("%d events in the stream after recovery, want the 2 accepted", n)
	}
}
