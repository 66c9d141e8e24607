package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/nats-io/nats.go"
)

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("store event: %w", nats.ErrReconnectBufExceeded), true},
		{fmt.Errorf("publish: %w", nats.ErrConnectionClosed), true},
		{nats.ErrNoResponders, true},
		{context.DeadlineExceeded, false}, // may have been written
		{errors.New("wrong last sequence"), false},
		{nil, false},
	} {
		if got := Unavailable(tc.err); got != tc.want {
			t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestInMemory(t *testing.T) {
	if inMemory(t.TempDir()) && !inMemory("/dev/shm") {
		t.Error("a temporary folder in memory but not /dev/shm")
	}
	if _, err := os.Stat("/dev/shm"); err == nil && !inMemory("/dev/shm") {
		t.Error("/dev/shm not seen as in memory")
	}
	if inMemory("/proc/self/nonexistent") {
		t.Error("a missing folder seen as in memory")
	}
}
