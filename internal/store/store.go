// Package store owns the connection to NATS JetStream, embedded in-process
// by default or external when a URL is given, and the buckets and streams
// Stratus keeps its state in. It is the one place that knows NATS setup.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sys/unix"
)

// Names of the buckets and streams.
const (
	FunctionsBucket  = "stratus-functions"
	APIsBucket       = "stratus-apis"
	SchedulesBucket  = "stratus-schedules"
	CodeBucket       = "stratus-code"
	LogsStream       = "STRATUS_LOGS"
	LogsSubject      = "stratus.logs."
	UsageStream      = "STRATUS_USAGE"
	UsageSubject     = "stratus.usage."
	AsyncStream      = "STRATUS_ASYNC"
	AsyncSubject     = "stratus.async."
	QueuesBucket     = "stratus-queues"
	MappingsBucket   = "stratus-event-source-mappings"
	LeasesBucket     = "stratus-sqs-leases"
	IAMBucket        = "stratus-iam"
	ObjectsBucket    = "stratus-s3"
	LayersBucket     = "stratus-layers"
	LogGroupsBucket  = "stratus-log-groups"
	ObjectDataBucket = "stratus-s3-data"
	DelayStream      = "STRATUS_SQS_DELAY"
	DelaySubject     = "stratus.sqsdelay."
	// QueueStreamPrefix and QueueSubject name the stream and subject of
	// each queue: one stream per queue, so purge, counts and retention are
	// the stream's own.
	QueueStreamPrefix = "SQS_"
	QueueSubject      = "stratus.sqs."
	// MaxLogAge is how long log lines are kept at most (and while the
	// logs' share of the disk holds them); a log group's retention may
	// keep them less.
	MaxLogAge = 30 * 24 * time.Hour
	// LeaseTTL bounds how long a delivery fence is kept: longer than the
	// longest visibility timeout (12 hours).
	LeaseTTL = 13 * time.Hour
)

// PullOptions are for every long-lived Consume: its pulls expire and are
// sent again often enough that a consumer resumes within seconds after
// JetStream restarts in-process (see space), at one pull per 10 s idle.
var PullOptions = []jetstream.PullConsumeOpt{jetstream.PullExpiry(10 * time.Second), jetstream.PullHeartbeat(3 * time.Second)}

// Options configure the store.
type Options struct {
	DataDir string // embedded server's JetStream folder lives under it
	URL     string // external NATS; empty starts the embedded server
	Logger  *slog.Logger
	// EncryptionKey, when set, encrypts the embedded store at rest
	// (JetStream's own encryption, ChaCha20-Poly1305).
	EncryptionKey string
}

// inMemory reports whether dir is on a file system kept in memory, where
// fsync protects against nothing.
func inMemory(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

// Unavailable reports whether err means the store could not be reached,
// so that nothing was written: the caller may simply retry.
// A full disk under the store counts: nothing was written there either.
func Unavailable(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, ErrNoSpace) || resourceError(err) || notEnabled(err)
}

// Explain says, for an error Unavailable recognises, why the store took
// nothing, in words for the caller of an API.
func Explain(err error) string {
	if errors.Is(err, ErrNoSpace) || resourceError(err) {
		return "Stratus cannot write to its store: the disk under its data folder is full; nothing was accepted, retry later"
	}
	return "Stratus cannot reach its store (NATS); nothing was accepted, retry"
}

// Store is an open connection with its buckets and streams.
type Store struct {
	NC        *nats.Conn
	JS        jetstream.JetStream
	Functions jetstream.KeyValue
	APIs      jetstream.KeyValue
	Schedules jetstream.KeyValue
	Queues    jetstream.KeyValue
	Mappings  jetstream.KeyValue
	Leases    jetstream.KeyValue
	IAM       jetstream.KeyValue // identities, keys and policies (package auth)
	Objects   jetstream.KeyValue // S3 buckets, the index of objects, uploads (package objects)
	Layers    jetstream.KeyValue // layer versions (package registry)
	LogGroups jetstream.KeyValue // log groups' settings: retention (package logs)
	Code      jetstream.ObjectStore
	// ObjectData holds S3 objects' bytes for every node of a cluster
	// (external NATS only; one node keeps them in files).
	ObjectData jetstream.ObjectStore
	Logs       jetstream.Stream
	Usage      jetstream.Stream
	Async      jetstream.Stream
	Delay      jetstream.Stream

	srv    *server.Server // nil when external
	space  *space         // watches the embedded store's disk; nil when external
	Limits Limits         // sizes chosen at start (embedded store)
}

// WriteFailures is closed when a write fails for want of space: a caller
// waiting for a confirmation then stops waiting, since JetStream answers
// none while the stream is failed. Never closed for an external NATS.
func (s *Store) WriteFailures() <-chan struct{} {
	if s.space == nil {
		return nil
	}
	return s.space.failures()
}

// Failed is err, or the reason the store cannot write when it cannot:
// a write that failed while the disk filled is reported as that.
func (s *Store) Failed(err error) error {
	if werr := s.Writable(); werr != nil && !Unavailable(err) {
		return fmt.Errorf("%w (%v)", werr, err)
	}
	return err
}

// Writable is nil while the store can take writes; else why not (an
// ErrNoSpace, which Unavailable recognises). Accepting paths check it
// first, so a full disk is refused at once rather than by a failed write.
func (s *Store) Writable() error {
	if s.space == nil {
		return nil
	}
	return s.space.err()
}

// Open connects (starting the embedded server if needed) and makes sure
// every bucket and stream exists.
func Open(ctx context.Context, o Options) (*Store, error) {
	s := &Store{}
	var err error
	if o.URL == "" {
		var cfg server.JetStreamConfig
		if s.srv, cfg, s.Limits, err = startEmbedded(o.DataDir, o.EncryptionKey); err != nil {
			return nil, err
		}
		s.space = newSpace(s.srv, cfg, o.Logger)
		if o.Logger != nil {
			o.Logger.Info("store sized from the disk", "free_mb", s.Limits.Free>>20, "max_store_mb", s.Limits.MaxStore>>20, "logs_mb", s.Limits.LogsBytes>>20)
		}
		if inMemory(o.DataDir) && o.Logger != nil {
			o.Logger.Warn("the data folder is in memory (tmpfs): accepted work and function code will not survive a reboot", "data", o.DataDir)
		}
		s.NC, err = nats.Connect("", nats.InProcessServer(s.srv), nats.Name("stratus"), nats.MaxReconnects(-1))
	} else {
		// No reconnect buffer: while NATS is away a write fails at once
		// (the API answers 503) instead of waiting out its timeout in a
		// buffer that may or may not reach the store.
		s.NC, err = nats.Connect(o.URL, nats.Name("stratus"), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(false), nats.ReconnectBufSize(-1),
			nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
				if o.Logger != nil && !nc.IsClosed() {
					o.Logger.Error("store unreachable: durable writes are refused (503) until NATS is back", "url", o.URL, "err", err)
				}
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				if o.Logger != nil {
					o.Logger.Info("store reachable again", "url", nc.ConnectedUrlRedacted())
				}
			}))
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	if s.JS, err = jetstream.New(s.NC); err != nil {
		s.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := s.ensure(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func startEmbedded(dataDir, key string) (*server.Server, server.JetStreamConfig, Limits, error) {
	var none server.JetStreamConfig
	dir := filepath.Join(dataDir, "jetstream")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, none, Limits{}, fmt.Errorf("create store folder: %w", err)
	}
	free, err := freeBytes(dir)
	if err != nil {
		return nil, none, Limits{}, err
	}
	lim := chooseLimits(free, usedBytes(dir))
	opts := &server.Options{
		ServerName: "stratus",
		JetStream:  true,
		StoreDir:   dir,
		// Set rather than left to JetStream, so the log stream's
		// reservation is sized to fit it on a small disk.
		JetStreamMaxStore: lim.MaxStore,
		// JetStream acknowledges before its periodic fsync by default; an
		// acknowledged write must survive power loss, so sync every write.
		SyncAlways: true,
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
	}
	if key != "" {
		opts.JetStreamKey = key
		opts.JetStreamCipher = server.ChaCha
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, none, Limits{}, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, none, Limits{}, errors.New("embedded nats: not ready after 30s")
	}
	cfg := server.JetStreamConfig{StoreDir: dir, MaxStore: lim.MaxStore, SyncAlways: true, Strict: true}
	if c := srv.JetStreamConfig(); c != nil {
		cfg = *c
		// The server keeps its files in a folder it adds below the one
		// configured; enabling again takes the configured one.
		cfg.StoreDir = dir
	}
	return srv, cfg, lim, nil
}

func (s *Store) ensure(ctx context.Context) error {
	var err error
	s.Functions, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  FunctionsBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("functions bucket: %w", err)
	}
	s.APIs, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  APIsBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("apis bucket: %w", err)
	}
	s.Schedules, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  SchedulesBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("schedules bucket: %w", err)
	}
	s.Queues, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  QueuesBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("queues bucket: %w", err)
	}
	s.Mappings, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  MappingsBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("event source mappings bucket: %w", err)
	}
	// Fences of redelivered queue messages (see package queue).
	s.Leases, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  LeasesBucket,
		History: 1,
		Storage: jetstream.FileStorage,
		TTL:     LeaseTTL,
	})
	if err != nil {
		return fmt.Errorf("leases bucket: %w", err)
	}
	s.IAM, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  IAMBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("iam bucket: %w", err)
	}
	if s.srv == nil {
		s.ObjectData, err = s.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: ObjectDataBucket, Storage: jetstream.FileStorage})
		if err != nil {
			return fmt.Errorf("object data bucket: %w", err)
		}
	}
	s.Layers, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  LayersBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("layers bucket: %w", err)
	}
	s.LogGroups, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  LogGroupsBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("log groups bucket: %w", err)
	}
	s.Objects, err = s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:  ObjectsBucket,
		History: 1,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("objects bucket: %w", err)
	}
	// Queue messages sent with a delay wait here until due.
	s.Delay, err = s.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      DelayStream,
		Subjects:  []string{DelaySubject + ">"},
		Storage:   jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
		MaxAge:    14 * 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("delay stream: %w", err)
	}
	s.Code, err = s.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:  CodeBucket,
		Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("code bucket: %w", err)
	}
	s.Logs, err = s.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     LogsStream,
		Subjects: []string{LogsSubject + ">"},
		Storage:  jetstream.FileStorage,
		MaxAge:   MaxLogAge,
		MaxBytes: s.logsBytes(),
		Discard:  jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("logs stream: %w", err)
	}
	s.Usage, err = s.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     UsageStream,
		Subjects: []string{UsageSubject + ">"},
		Storage:  jetstream.FileStorage,
		MaxAge:   400 * 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("usage stream: %w", err)
	}
	// Accepted asynchronous events: removed once handled (acknowledged).
	s.Async, err = s.JS.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       AsyncStream,
		Subjects:   []string{AsyncSubject + ">"},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.WorkQueuePolicy,
		MaxAge:     6*time.Hour + 10*time.Minute,
		Duplicates: 10 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("async stream: %w", err)
	}
	return nil
}

func (s *Store) logsBytes() int64 {
	if s.Limits.LogsBytes > 0 {
		return s.Limits.LogsBytes
	}
	return maxLogsBytes
}

// Close drains the connection and stops the embedded server.
func (s *Store) Close() {
	if s.space != nil {
		s.space.close()
	}
	if s.NC != nil {
		_ = s.NC.Drain()
		s.NC.Close()
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
}

// WrongRevision reports whether a compare-and-set write (KV Update, or
// Create over a key) lost to another writer: read again and retry.
func WrongRevision(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}
