// Package objects keeps S3 buckets and objects: each object's bytes in
// files under the data folder, written and fsynced before the object is
// acknowledged, and its record (size, ETag, metadata, checksums, the files
// it is made of) in the store, whose every change this package follows
// into an in-memory sorted index per bucket for listing.
package objects

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/store"
)

// Errors the S3 API maps to its codes.
var (
	ErrNoSuchBucket     = errors.New("the specified bucket does not exist")
	ErrBucketExists     = errors.New("the requested bucket name is not available")
	ErrBucketOwned      = errors.New("your previous request to create the named bucket succeeded and you already own it")
	ErrBucketNotEmpty   = errors.New("the bucket you tried to delete is not empty")
	ErrNoSuchKey        = errors.New("the specified key does not exist")
	ErrNoSuchUpload     = errors.New("the specified upload does not exist: the upload ID may be invalid, or the upload may have been aborted or completed")
	ErrPrecondition     = errors.New("at least one of the preconditions you specified did not hold")
	ErrConflict         = errors.New("a conflicting operation is in progress against this resource")
	ErrInvalidPart      = errors.New("one or more of the specified parts could not be found: the part may not have been uploaded, or the specified entity tag may not match the part's entity tag")
	ErrInvalidPartOrder = errors.New("the list of parts was not in ascending order: parts must be ordered by part number")
	ErrEntityTooSmall   = errors.New("your proposed upload is smaller than the minimum allowed object size")
)

// Limits, as S3's.
const (
	MaxObjectSize = 5 << 30 // one PUT, and one part
	MinPartSize   = 5 << 20 // every part but the last
	MaxParts      = 10000
	MaxKeyLength  = 1024
	MaxMetaBytes  = 2 << 10
	// uploadLifetime bounds an upload never completed nor aborted.
	uploadLifetime = 7 * 24 * time.Hour
)

// Bucket is a bucket's record.
type Bucket struct {
	Name    string            `json:"name"`
	Created time.Time         `json:"created"`
	Region  string            `json:"region"`
	Tags    map[string]string `json:"tags,omitempty"`
	// Notifications, as PutBucketNotificationConfiguration set them.
	Notifications *Notifications `json:"notifications,omitempty"`
}

// Notifications are a bucket's event destinations.
type Notifications struct {
	Functions []Target `json:"functions,omitempty"`
	Queues    []Target `json:"queues,omitempty"`
}

// Target is one destination and the events it takes.
type Target struct {
	ID     string   `json:"id"`
	ARN    string   `json:"arn"`
	Events []string `json:"events"`
	Prefix string   `json:"prefix,omitempty"`
	Suffix string   `json:"suffix,omitempty"`
}

// Object is an object's record.
type Object struct {
	Bucket   string    `json:"bucket"`
	Key      string    `json:"key"`
	Size     int64     `json:"size"`
	ETag     string    `json:"etag"` // without quotes
	Modified time.Time `json:"modified"`
	Headers  Headers   `json:"headers"`
	// Checksums by algorithm (CRC32, CRC32C, CRC64NVME, SHA1, SHA256),
	// base64 as on the wire; ChecksumType FULL_OBJECT or COMPOSITE.
	Checksums    map[string]string `json:"checksums,omitempty"`
	ChecksumType string            `json:"checksumType,omitempty"`
	Parts        int               `json:"parts,omitempty"` // of a multipart upload
	Segments     []Segment         `json:"segments"`
	Sequencer    string            `json:"sequencer"`
	rev          uint64
}

// Headers are what a PUT sets and a GET returns as it was set.
type Headers struct {
	ContentType        string            `json:"contentType,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	ContentLanguage    string            `json:"contentLanguage,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	Expires            string            `json:"expires,omitempty"`
	Meta               map[string]string `json:"meta,omitempty"` // x-amz-meta-*, names lower case
}

// Segment is one file of an object's bytes, in order.
type Segment struct {
	File string `json:"file"`
	Size int64  `json:"size"`
}

// Upload is a multipart upload in progress.
type Upload struct {
	ID        string    `json:"id"`
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"`
	Initiated time.Time `json:"initiated"`
	Headers   Headers   `json:"headers"`
	Algorithm string    `json:"algorithm,omitempty"` // checksum the parts carry
	Type      string    `json:"type,omitempty"`      // COMPOSITE or FULL_OBJECT
}

// Part is an uploaded part.
type Part struct {
	Number    int               `json:"number"`
	Size      int64             `json:"size"`
	ETag      string            `json:"etag"`
	Modified  time.Time         `json:"modified"`
	Checksums map[string]string `json:"checksums,omitempty"`
	Segment   Segment           `json:"segment"`
}

// Store is the buckets and objects of this server (or cluster).
type Store struct {
	kv    jetstream.KeyValue
	st    *store.Store
	files *Files
	log   *slog.Logger
	now   func() time.Time

	mu      sync.RWMutex
	buckets map[string]*index
	uploads map[string]*Upload // by id
	stop    func()

	seqMu sync.Mutex
	seq   uint64

	bg     sync.WaitGroup
	cancel context.CancelFunc
}

// index is one bucket: its record and its objects by key, the keys sorted.
type index struct {
	b       Bucket
	rev     uint64
	keys    []string
	objects map[string]*Object
	bytes   int64
}

// Open loads the index, removes files no record names (left by a crash
// between a write and its record), and starts following changes.
func Open(ctx context.Context, st *store.Store, dir string, log *slog.Logger) (*Store, error) {
	f, err := openFiles(dir, st.ObjectData)
	if err != nil {
		return nil, err
	}
	s := &Store{kv: st.Objects, st: st, files: f, log: log, now: time.Now, buckets: map[string]*index{}, uploads: map[string]*Upload{}}
	stop, err := store.Follow(ctx, s.kv, s.apply)
	if err != nil {
		return nil, err
	}
	s.stop = stop
	if err := s.sweepFiles(ctx); err != nil {
		log.Warn("objects: could not sweep unreferenced files", "err", err)
	}
	bg, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.bg.Go(func() { s.expireUploads(bg) })
	return s, nil
}

// Close stops following the store.
func (s *Store) Close() {
	s.cancel()
	s.bg.Wait()
	s.stop()
}

// Keys in the store: b.BUCKET, o.BUCKET.KEY, u.BUCKET.ID, p.ID.NUMBER;
// a bucket's dots become underscores (which bucket names never have) and
// object keys are base64url, so that every key parses back.
func bucketKey(b string) string { return "b." + strings.ReplaceAll(b, ".", "_") }
func objectKey(b, k string) string {
	return "o." + strings.ReplaceAll(b, ".", "_") + "." + encodeKey(k)
}
func uploadKey(b, id string) string   { return "u." + strings.ReplaceAll(b, ".", "_") + "." + id }
func partKey(id string, n int) string { return fmt.Sprintf("p.%s.%05d", id, n) }
func encodeKey(k string) string {
	if k == "" {
		return "="
	}
	return base64.RawURLEncoding.EncodeToString([]byte(k))
}

// apply folds one change of the store into the index.
func (s *Store) apply(e jetstream.KeyValueEntry) {
	k := e.Key()
	del := e.Operation() != jetstream.KeyValuePut
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasPrefix(k, "b."):
		name := strings.ReplaceAll(k[2:], "_", ".")
		if del {
			delete(s.buckets, name)
			return
		}
		var b Bucket
		if json.Unmarshal(e.Value(), &b) != nil {
			return
		}
		ix := s.buckets[name]
		if ix == nil {
			ix = &index{objects: map[string]*Object{}}
			s.buckets[name] = ix
		}
		if e.Revision() >= ix.rev {
			ix.b, ix.rev = b, e.Revision()
		}
	case strings.HasPrefix(k, "o."):
		if del {
			bucket, key, ok := parseObjectKey(k)
			if ok {
				s.unindex(bucket, key, e.Revision())
			}
			return
		}
		var o Object
		if json.Unmarshal(e.Value(), &o) != nil {
			return
		}
		o.rev = e.Revision()
		s.indexObject(&o)
	case strings.HasPrefix(k, "u."):
		id := k[strings.LastIndexByte(k, '.')+1:]
		if del {
			delete(s.uploads, id)
			return
		}
		var u Upload
		if json.Unmarshal(e.Value(), &u) == nil {
			s.uploads[id] = &u
		}
	}
}

func parseObjectKey(k string) (bucket, key string, ok bool) {
	rest := k[2:]
	i := strings.IndexByte(rest, '.')
	if i < 0 {
		return "", "", false
	}
	bucket = strings.ReplaceAll(rest[:i], "_", ".")
	if rest[i+1:] == "=" {
		return bucket, "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(rest[i+1:])
	if err != nil {
		return "", "", false
	}
	return bucket, string(b), true
}

// indexObject puts o in its bucket's index unless a newer record is
// there. Called with s.mu held.
func (s *Store) indexObject(o *Object) {
	ix := s.buckets[o.Bucket]
	if ix == nil {
		// The object's record came before its bucket's (a watch in key
		// order): hold it in an index the bucket's record fills.
		ix = &index{objects: map[string]*Object{}}
		s.buckets[o.Bucket] = ix
	}
	old := ix.objects[o.Key]
	if old != nil && old.rev > o.rev {
		return
	}
	if old == nil {
		i, _ := slices.BinarySearch(ix.keys, o.Key)
		ix.keys = slices.Insert(ix.keys, i, o.Key)
	} else {
		ix.bytes -= old.Size
	}
	ix.objects[o.Key] = o
	ix.bytes += o.Size
}

func (s *Store) unindex(bucket, key string, rev uint64) {
	ix := s.buckets[bucket]
	if ix == nil {
		return
	}
	old := ix.objects[key]
	if old == nil || old.rev > rev {
		return
	}
	delete(ix.objects, key)
	ix.bytes -= old.Size
	if i, ok := slices.BinarySearch(ix.keys, key); ok {
		ix.keys = slices.Delete(ix.keys, i, i+1)
	}
}

// writable refuses new data while the store cannot take it.
func (s *Store) writable() error {
	if err := s.st.Writable(); err != nil {
		return err
	}
	return s.files.writable()
}

// CreateBucket makes a bucket; one the caller already has is ErrBucketOwned.
func (s *Store) CreateBucket(ctx context.Context, name, region string) error {
	if err := s.writable(); err != nil {
		return err
	}
	b, _ := json.Marshal(Bucket{Name: name, Created: s.now().UTC(), Region: region})
	rev, err := s.kv.Create(ctx, bucketKey(name), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return ErrBucketOwned // one account: any existing bucket is the caller's
	}
	if err != nil {
		return s.st.Failed(fmt.Errorf("create bucket: %w", err))
	}
	s.mu.Lock()
	ix := s.buckets[name]
	if ix == nil {
		ix = &index{objects: map[string]*Object{}}
		s.buckets[name] = ix
	}
	var bk Bucket
	_ = json.Unmarshal(b, &bk)
	if rev >= ix.rev {
		ix.b, ix.rev = bk, rev
	}
	s.mu.Unlock()
	return nil
}

// Bucket returns a bucket's record.
func (s *Store) Bucket(name string) (Bucket, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.buckets[name]
	if ix == nil || ix.rev == 0 {
		return Bucket{}, ErrNoSuchBucket
	}
	return ix.b, nil
}

// Buckets lists every bucket by name.
func (s *Store) Buckets() []Bucket {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Bucket, 0, len(s.buckets))
	for _, ix := range s.buckets {
		if ix.rev != 0 {
			out = append(out, ix.b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stats are a bucket's objects and bytes.
func (s *Store) Stats(name string) (objects int, bytes int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ix := s.buckets[name]; ix != nil {
		return len(ix.keys), ix.bytes
	}
	return 0, 0
}

// UpdateBucket changes a bucket's record with f, safely against others.
func (s *Store) UpdateBucket(ctx context.Context, name string, f func(*Bucket) error) error {
	for range 5 {
		e, err := s.kv.Get(ctx, bucketKey(name))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return ErrNoSuchBucket
		}
		if err != nil {
			return fmt.Errorf("read bucket: %w", err)
		}
		var b Bucket
		if err := json.Unmarshal(e.Value(), &b); err != nil {
			return err
		}
		if err := f(&b); err != nil {
			return err
		}
		v, _ := json.Marshal(b)
		rev, err := s.kv.Update(ctx, bucketKey(name), v, e.Revision())
		if err == nil {
			s.mu.Lock()
			if ix := s.buckets[name]; ix != nil && rev >= ix.rev {
				ix.b, ix.rev = b, rev
			}
			s.mu.Unlock()
			return nil
		}
		if !store.WrongRevision(err) {
			return s.st.Failed(fmt.Errorf("update bucket: %w", err))
		}
	}
	return ErrConflict
}

// DeleteBucket removes an empty bucket.
func (s *Store) DeleteBucket(ctx context.Context, name string) error {
	s.mu.RLock()
	ix := s.buckets[name]
	exists := ix != nil && ix.rev != 0
	empty := ix == nil || len(ix.keys) == 0
	for _, u := range s.uploads {
		if u.Bucket == name {
			empty = false
		}
	}
	s.mu.RUnlock()
	if !exists {
		return ErrNoSuchBucket
	}
	if !empty {
		return ErrBucketNotEmpty
	}
	if err := s.kv.Purge(ctx, bucketKey(name)); err != nil {
		return s.st.Failed(fmt.Errorf("delete bucket: %w", err))
	}
	s.mu.Lock()
	if ix := s.buckets[name]; ix != nil && len(ix.keys) == 0 {
		delete(s.buckets, name)
	}
	s.mu.Unlock()
	return nil
}

// Head returns an object's record.
func (s *Store) Head(bucket, key string) (*Object, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.buckets[bucket]
	if ix == nil || ix.rev == 0 {
		return nil, ErrNoSuchBucket
	}
	o := ix.objects[key]
	if o == nil {
		return nil, ErrNoSuchKey
	}
	return o, nil
}

// Listing is one page of a bucket's keys.
type Listing struct {
	Objects   []*Object
	Prefixes  []string
	Truncated bool
	Next      string // the last key or prefix on the page
}

// List pages through the keys after `after` that start with prefix,
// folding those with delim after the prefix into common prefixes.
func (s *Store) List(bucket, prefix, delim, after string, max int) (Listing, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ix := s.buckets[bucket]
	if ix == nil || ix.rev == 0 {
		return Listing{}, ErrNoSuchBucket
	}
	var l Listing
	if max <= 0 {
		l.Truncated = false
		return l, nil
	}
	start := after
	if prefix > start {
		start = prefix
	}
	i, found := slices.BinarySearch(ix.keys, start)
	if found && start == after {
		i++
	}
	for ; i < len(ix.keys); i++ {
		k := ix.keys[i]
		if !strings.HasPrefix(k, prefix) {
			break
		}
		if delim != "" {
			if j := strings.Index(k[len(prefix):], delim); j >= 0 {
				cp := k[:len(prefix)+j+len(delim)]
				if cp > after {
					if len(l.Objects)+len(l.Prefixes) == max {
						l.Truncated = true
						return l, nil
					}
					l.Prefixes = append(l.Prefixes, cp)
					l.Next = cp
				}
				// Skip every other key under this prefix.
				i, _ = slices.BinarySearch(ix.keys, cp+"\U0010FFFF")
				i--
				continue
			}
		}
		if len(l.Objects)+len(l.Prefixes) == max {
			l.Truncated = true
			return l, nil
		}
		l.Objects = append(l.Objects, ix.objects[k])
		l.Next = k
	}
	return l, nil
}

// sequencer orders events on a key as S3's do: hex that sorts in time.
func (s *Store) sequencer() string {
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	n := uint64(s.now().UnixNano())
	if n <= s.seq {
		n = s.seq + 1
	}
	s.seq = n
	return fmt.Sprintf("%016X", n)
}

// Put records o (its segments already written and synced). With
// ifNoneMatch the key must not exist; with ifMatch its ETag must be that.
// The files of the object it replaces are removed.
func (s *Store) Put(ctx context.Context, o *Object, ifNoneMatch bool, ifMatch string) error {
	if _, err := s.Bucket(o.Bucket); err != nil {
		return err
	}
	o.Modified = s.now().UTC().Truncate(time.Millisecond)
	o.Sequencer = s.sequencer()
	v, _ := json.Marshal(o)
	key := objectKey(o.Bucket, o.Key)
	var rev uint64
	var err error
	var old *Object
	switch {
	case ifNoneMatch:
		rev, err = s.kv.Create(ctx, key, v)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrPrecondition
		}
	case ifMatch != "":
		e, gerr := s.kv.Get(ctx, key)
		if errors.Is(gerr, jetstream.ErrKeyNotFound) {
			return ErrNoSuchKey
		}
		if gerr != nil {
			return fmt.Errorf("read object: %w", gerr)
		}
		var cur Object
		_ = json.Unmarshal(e.Value(), &cur)
		if ifMatch != "*" && strings.Trim(ifMatch, `"`) != cur.ETag {
			return ErrPrecondition
		}
		old = &cur
		rev, err = s.kv.Update(ctx, key, v, e.Revision())
		if err != nil && store.WrongRevision(err) {
			return ErrConflict
		}
	default:
		old, _ = s.Head(o.Bucket, o.Key)
		rev, err = s.kv.Put(ctx, key, v)
	}
	if err != nil {
		return s.st.Failed(fmt.Errorf("record object: %w", err))
	}
	o.rev = rev
	s.mu.Lock()
	s.indexObject(o)
	s.mu.Unlock()
	if old != nil {
		s.removeSegments(old.Segments)
	}
	return nil
}

// Delete removes an object (none there is no error, as on S3). It
// reports whether there was one.
func (s *Store) Delete(ctx context.Context, bucket, key string) (bool, error) {
	o, err := s.Head(bucket, key)
	if errors.Is(err, ErrNoSuchKey) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.kv.Purge(ctx, objectKey(bucket, key)); err != nil {
		return false, s.st.Failed(fmt.Errorf("delete object: %w", err))
	}
	s.mu.Lock()
	s.unindex(bucket, key, ^uint64(0))
	s.mu.Unlock()
	s.removeSegments(o.Segments)
	return true, nil
}

func (s *Store) removeSegments(segs []Segment) {
	for _, g := range segs {
		s.files.remove(g.File)
	}
}

// Files writes and reads the files behind objects.
func (s *Store) Files() *Files { return s.files }

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sweepFiles removes files that no object or part names.
func (s *Store) sweepFiles(ctx context.Context) error {
	used := map[string]bool{}
	s.mu.RLock()
	for _, ix := range s.buckets {
		for _, o := range ix.objects {
			for _, g := range o.Segments {
				used[g.File] = true
			}
		}
	}
	ids := make([]string, 0, len(s.uploads))
	for id := range s.uploads {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	for _, id := range ids {
		parts, err := s.Parts(ctx, id)
		if err != nil {
			return err
		}
		for _, p := range parts {
			used[p.Segment.File] = true
		}
	}
	return s.files.sweep(used)
}

// storeDir is where a server keeps object files.
func storeDir(dataDir string) string { return filepath.Join(dataDir, "objects") }

// DefaultDir is the object files' folder under a data folder.
func DefaultDir(dataDir string) string { return storeDir(dataDir) }
