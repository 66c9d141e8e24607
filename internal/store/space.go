package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"
)

// ErrNoSpace is returned for writes while the disk under the data folder
// is (nearly) full; nothing was written, and the caller may retry later.
var ErrNoSpace = errors.New("the store cannot write: the disk under the data folder is full")

const (
	// reserveBytes is the free space kept under the embedded store: below
	// it writes are refused before the file system refuses them, since
	// JetStream disables itself on a failed write.
	reserveBytes = 16 << 20
	// maxLogsBytes bounds the log stream where the disk allows; on a small
	// disk it gets an eighth of the store.
	maxLogsBytes = 1 << 30
	// spaceEvery is how often the free space is read (one statfs).
	spaceEvery = 2 * time.Second
)

// Limits are the store's sizes, chosen at start from the space there is.
type Limits struct {
	MaxStore  int64 // all JetStream file storage
	LogsBytes int64 // the log stream, the one reservation
	Free      int64 // free space under the store at start
}

// chooseLimits sizes the store as JetStream would by default (three
// quarters of the space it may use: what is free plus what it holds) and
// the log stream to fit in it.
func chooseLimits(free, used int64) Limits {
	maxStore := (free + used) / 4 * 3
	return Limits{MaxStore: maxStore, LogsBytes: min(maxLogsBytes, maxStore/8), Free: free}
}

func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

func usedBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// space watches the disk under the embedded store: it marks the store
// unwritable while the disk is nearly full or JetStream has disabled
// itself after a failed write, and enables JetStream again once there is
// room, so a node recovers from a full disk without a restart.
type space struct {
	srv  *server.Server
	cfg  server.JetStreamConfig
	dir  string
	log  *slog.Logger
	free func(string) (int64, error)

	why atomic.Pointer[string] // nil while writable
	// writeFailed: a stream's write failed for want of space. JetStream
	// keeps such a stream failing until it is loaded again, so once there
	// is room JetStream is restarted in-process.
	writeFailed atomic.Bool
	failedMu    sync.Mutex
	failed      chan struct{} // closed when a write fails; replaced on recovery
	stop        chan struct{}
	done        chan struct{}
}

// markFailed records a write that failed for want of space.
func (sp *space) markFailed() {
	sp.failedMu.Lock()
	defer sp.failedMu.Unlock()
	if !sp.writeFailed.Swap(true) {
		close(sp.failed)
	}
}

// failures is closed once a write fails for want of space.
func (sp *space) failures() <-chan struct{} {
	sp.failedMu.Lock()
	defer sp.failedMu.Unlock()
	return sp.failed
}

func newSpace(srv *server.Server, cfg server.JetStreamConfig, log *slog.Logger) *space {
	if log == nil {
		log = slog.Default()
	}
	sp := &space{srv: srv, cfg: cfg, dir: cfg.StoreDir, log: log, free: freeBytes, failed: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	srv.SetLogger(&natsLogger{sp: sp, log: log}, false, false)
	sp.check()
	go sp.run()
	return sp
}

func (sp *space) run() {
	defer close(sp.done)
	t := time.NewTicker(spaceEvery)
	defer t.Stop()
	for {
		select {
		case <-sp.stop:
			return
		case <-t.C:
			sp.check()
		}
	}
}

func (sp *space) close() {
	close(sp.stop)
	<-sp.done
}

// check reads the free space and the state of JetStream.
func (sp *space) check() {
	free, err := sp.free(sp.dir)
	low := err == nil && free < reserveBytes
	if sp.writeFailed.Load() && !low {
		sp.log.Warn("store: restarting JetStream to reload a stream whose write failed for want of space", "free_mb", free>>20)
		_ = sp.srv.ShutdownJetStream()
		sp.failedMu.Lock()
		sp.writeFailed.Store(false)
		sp.failed = make(chan struct{})
		sp.failedMu.Unlock()
	}
	enabled := sp.srv.JetStreamEnabled()
	if !enabled && !low {
		cfg := sp.cfg
		if err := sp.srv.EnableJetStream(&cfg); err != nil {
			sp.log.Warn("store: JetStream could not be enabled again", "err", err)
		} else {
			sp.log.Info("store: JetStream enabled again after a failed write", "free_mb", free>>20)
		}
		enabled = sp.srv.JetStreamEnabled()
	}
	var why string
	switch {
	case low && sp.writeFailed.Load():
		why = fmt.Sprintf("a write failed for want of space; %d MB free, %d MB kept in reserve", free>>20, reserveBytes>>20)
	case low:
		why = fmt.Sprintf("%d MB free, %d MB kept in reserve", free>>20, reserveBytes>>20)
	case !enabled:
		why = "JetStream disabled itself after a failed write"
	}
	prev := sp.why.Load()
	switch {
	case why == "" && prev != nil:
		sp.why.Store(nil)
		sp.log.Info("store: writable again")
	case why != "" && (prev == nil || *prev != why):
		sp.why.Store(&why)
		if prev == nil {
			sp.log.Error("store: refusing writes until there is room", "reason", why)
		}
	}
}

// err is why the store cannot write now, or nil.
func (sp *space) err() error {
	if sp.writeFailed.Load() {
		return fmt.Errorf("%w: a write failed for want of space", ErrNoSpace)
	}
	if why := sp.why.Load(); why != nil {
		return fmt.Errorf("%w: %s", ErrNoSpace, *why)
	}
	return nil
}

// notEnabled reports JetStream not answering at all: disabled after a
// failed write, or not (yet) serving the stream.
func notEnabled(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// resourceError reports JetStream refusing a write for want of storage.
func resourceError(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case errCodeInsufficientResources, errCodeStorageResourcesExceeded, errCodeStoreFailed:
			return true
		}
	}
	return false
}

// JetStream's error codes for storage it does not have, as nats-server
// numbers them (JSInsufficientResourcesErr, JSStorageResourcesExceededErr,
// JSStreamStoreFailedF).
const (
	errCodeInsufficientResources    jetstream.ErrorCode = 10023
	errCodeStorageResourcesExceeded jetstream.ErrorCode = 10047
	errCodeStoreFailed              jetstream.ErrorCode = 10077
)

// natsLogger passes the embedded server's errors to the log, at most one
// a second, and tells the space watcher of writes that failed for want of
// space (JetStream reports them nowhere else).
type natsLogger struct {
	sp   *space
	log  *slog.Logger
	last atomic.Int64 // unix nanoseconds of the last error logged
}

func (l *natsLogger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "no space left") || strings.Contains(msg, "out of space") ||
		strings.Contains(msg, "out of resources") || strings.Contains(msg, "write error") {
		l.sp.markFailed()
	}
	now := time.Now().UnixNano()
	if last := l.last.Load(); now-last > int64(time.Second) && l.last.CompareAndSwap(last, now) {
		l.log.Error("nats: " + msg)
	}
}

func (l *natsLogger) Fatalf(format string, v ...any) {
	l.log.Error("nats: " + fmt.Sprintf(format, v...))
}
func (l *natsLogger) Warnf(format string, v ...any) {
	l.log.Debug("nats: " + fmt.Sprintf(format, v...))
}
func (l *natsLogger) Noticef(string, ...any) {}
func (l *natsLogger) Debugf(string, ...any)  {}
func (l *natsLogger) Tracef(string, ...any)  {}

// Disk is the store's use of its disk: bytes JetStream holds, the most
// it may hold (0: no limit known), and the disk's free bytes (-1 when the
// store is an external NATS whose disk this node cannot see).
type Disk struct {
	Used, Max, Free int64
}

// Disk reads the store's use of its disk.
func (s *Store) Disk(ctx context.Context) (Disk, error) {
	d := Disk{Free: -1}
	info, err := s.JS.AccountInfo(ctx)
	if err != nil {
		return d, fmt.Errorf("store usage: %w", err)
	}
	d.Used = int64(info.Store)
	if info.Limits.MaxStore > 0 {
		d.Max = info.Limits.MaxStore
	} else if s.Limits.MaxStore > 0 {
		d.Max = s.Limits.MaxStore
	}
	if s.space != nil {
		if f, err := s.space.free(s.space.dir); err == nil {
			d.Free = f
		}
	}
	return d, nil
}
