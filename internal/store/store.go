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
	"sync"
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
	NodesBucket      = "stratus-nodes"
	SlotsBucket      = "stratus-slots"
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
	// NodeTTL is how long a node that stopped saying it is alive is
	// still taken to be.
	NodeTTL = 10 * time.Second
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
	// Cluster, when set, joins the embedded server to a NATS cluster of
	// other Stratus nodes' embedded servers.
	Cluster *Cluster
	// Replicas of every stream and bucket; 0 chooses: 3 when the cluster
	// has at least 3 servers, else 1.
	Replicas int
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
	Nodes     jetstream.KeyValue // live nodes (package cluster)
	Slots     jetstream.KeyValue // concurrency leased per node (package cluster)
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
	// Replicas is how many copies JetStream keeps of every stream and
	// bucket (1 on a single server).
	Replicas int
	// Servers is how many NATS servers the cluster has (1 alone).
	Servers int
}

// Clustered reports whether other nodes share this store.
func (s *Store) Clustered() bool { return s.srv == nil || s.Servers > 1 }

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
	s.Servers = 1
	if o.URL == "" {
		var cfg server.JetStreamConfig
		if s.srv, cfg, s.Limits, err = startEmbedded(o.DataDir, o.EncryptionKey, o.Cluster); err != nil {
			return nil, err
		}
		if o.Cluster != nil {
			s.Servers = o.Cluster.size()
		}
		s.space = newSpace(s.srv, cfg, o.Logger)
		if o.Logger != nil {
			o.Logger.Info("store sized from the disk", "free_mb", s.Limits.Free>>20, "max_store_mb", s.Limits.MaxStore>>20, "logs_mb", s.Limits.LogsBytes>>20)
		}
		if inMemory(o.DataDir) && o.Logger != nil {
			o.Logger.Warn("the data folder is in memory (tmpfs): accepted work and function code will not survive a reboot", "data", o.DataDir)
		}
		opts := []nats.Option{nats.InProcessServer(s.srv), nats.Name("stratus"), nats.MaxReconnects(-1)}
		if o.Cluster != nil {
			opts = append(opts, nats.UserInfo(routeUser, o.Cluster.clientSecret))
		}
		s.NC, err = nats.Connect("", opts...)
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
	if o.URL != "" {
		s.Servers = knownServers(s.NC)
	}
	s.Replicas = o.Replicas
	if s.Replicas <= 0 {
		s.Replicas = 1
		if s.Servers >= 3 {
			s.Replicas = 3
		}
	}
	if s.Replicas > s.Servers && o.Logger != nil {
		o.Logger.Warn("more replicas asked for than NATS servers known: streams are created once enough servers have joined", "replicas", s.Replicas, "servers", s.Servers)
	}
	// A node of a cluster starting alongside its peers waits for JetStream
	// to elect its leaders; every step below is idempotent.
	for said := time.Now(); ; {
		// A request JetStream cannot answer yet (no leader) gets no reply:
		// each try has a deadline of its own.
		try, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = s.ensure(try)
		cancel()
		if err == nil || !s.Clustered() || ctx.Err() != nil {
			break
		}
		if time.Since(said) > 5*time.Second && o.Logger != nil {
			o.Logger.Info("waiting for the cluster's JetStream", "err", err)
			said = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	if o.Cluster != nil {
		s.catchUp(ctx, o.Cluster.Node, o.Logger)
	}
	if o.Logger != nil {
		o.Logger.Info("store ready", "servers", s.Servers, "replicas", s.Replicas)
	}
	return s, nil
}

// knownServers counts the distinct servers of the cluster a connection
// knows: those configured and those the cluster advertised.
func knownServers(nc *nats.Conn) int {
	seen := map[string]bool{}
	for _, u := range nc.Servers() {
		seen[u] = true
	}
	return max(len(seen), 1)
}

func startEmbedded(dataDir, key string, cl *Cluster) (*server.Server, server.JetStreamConfig, Limits, error) {
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
	if cl != nil {
		if err := cl.apply(opts); err != nil {
			return nil, none, Limits{}, err
		}
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
	kvs := []struct {
		into *jetstream.KeyValue
		name string
		ttl  time.Duration
	}{
		{&s.Functions, FunctionsBucket, 0},
		{&s.APIs, APIsBucket, 0},
		{&s.Schedules, SchedulesBucket, 0},
		{&s.Queues, QueuesBucket, 0},
		{&s.Mappings, MappingsBucket, 0},
		// Fences of redelivered queue messages (see package queue).
		{&s.Leases, LeasesBucket, LeaseTTL},
		{&s.IAM, IAMBucket, 0},
		{&s.Layers, LayersBucket, 0},
		{&s.LogGroups, LogGroupsBucket, 0},
		{&s.Objects, ObjectsBucket, 0},
		// Live nodes, each put again every few seconds (package cluster).
		{&s.Nodes, NodesBucket, NodeTTL},
		// Concurrency leased by each node (package cluster).
		{&s.Slots, SlotsBucket, 0},
	}
	streams := []struct {
		into *jetstream.Stream
		cfg  jetstream.StreamConfig
	}{
		// Queue messages sent with a delay wait here until due.
		{&s.Delay, jetstream.StreamConfig{Name: DelayStream, Subjects: []string{DelaySubject + ">"},
			Retention: jetstream.WorkQueuePolicy, MaxAge: 14 * 24 * time.Hour}},
		{&s.Logs, jetstream.StreamConfig{Name: LogsStream, Subjects: []string{LogsSubject + ">"},
			MaxAge: MaxLogAge, MaxBytes: s.logsBytes(), Discard: jetstream.DiscardOld}},
		{&s.Usage, jetstream.StreamConfig{Name: UsageStream, Subjects: []string{UsageSubject + ">"}, MaxAge: 400 * 24 * time.Hour}},
		// Accepted asynchronous events: removed once handled (acknowledged).
		{&s.Async, jetstream.StreamConfig{Name: AsyncStream, Subjects: []string{AsyncSubject + ">"},
			Retention: jetstream.WorkQueuePolicy, MaxAge: 6*time.Hour + 10*time.Minute, Duplicates: 10 * time.Minute}},
	}
	// All at once: in a new cluster each stream's first leader election
	// may take seconds, and they then overlap.
	var wg sync.WaitGroup
	errs := make([]error, len(kvs)+len(streams)+2)
	for i, b := range kvs {
		wg.Go(func() {
			kv, err := s.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: b.name, History: 1, Storage: jetstream.FileStorage, TTL: b.ttl, Replicas: s.Replicas,
			})
			if err != nil {
				errs[i] = fmt.Errorf("bucket %s: %w", b.name, err)
				return
			}
			*b.into = kv
		})
	}
	if s.Clustered() {
		// One node keeps S3 objects' bytes in files; several share them here.
		wg.Go(func() {
			var err error
			s.ObjectData, err = s.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: ObjectDataBucket, Storage: jetstream.FileStorage, Replicas: s.Replicas})
			if err != nil {
				errs[len(errs)-1] = fmt.Errorf("object data bucket: %w", err)
			}
		})
	}
	wg.Go(func() {
		var err error
		s.Code, err = s.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: CodeBucket, Storage: jetstream.FileStorage, Replicas: s.Replicas})
		if err != nil {
			errs[len(errs)-2] = fmt.Errorf("code bucket: %w", err)
		}
	})
	for i, st := range streams {
		wg.Go(func() {
			st.cfg.Storage = jetstream.FileStorage
			st.cfg.Replicas = s.Replicas
			str, err := s.JS.CreateOrUpdateStream(ctx, st.cfg)
			if err != nil {
				errs[len(kvs)+i] = fmt.Errorf("stream %s: %w", st.cfg.Name, err)
				return
			}
			*st.into = str
		})
	}
	wg.Wait()
	return errors.Join(errs...)
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
