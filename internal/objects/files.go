package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"golang.org/x/sys/unix"
)

// Files keeps object bytes as files named by random ids, two hex digits
// of fan-out. A file is written whole and synced, with its folder, before
// any record names it; a record is the only way to find one.
//
// With a cluster (shared, JetStream's object store), a committed file is
// also put there before its record is written, and a node that has no
// copy of a file fetches it from there on first read, keeping it as its
// own copy: every node reads every object.
type Files struct {
	dir    string
	shared jetstream.ObjectStore
}

// ErrNoSpace: the disk cannot take the object.
var ErrNoSpace = errors.New("not enough space on the object store's disk")

func openFiles(dir string, shared jetstream.ObjectStore) (*Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("object files: %w", err)
	}
	return &Files{dir: dir, shared: shared}, nil
}

// sharedTimeout bounds one transfer of a file to or from the cluster.
const sharedTimeout = 10 * time.Minute

func (f *Files) path(name string) string { return filepath.Join(f.dir, name[:2], name) }

// reserve keeps this much free on the disk: a write that would eat into
// it is refused, so the store's own records can still be written.
const reserve = 64 << 20

func (f *Files) writable() error {
	var st unix.Statfs_t
	if err := unix.Statfs(f.dir, &st); err == nil && int64(st.Bavail)*int64(st.Bsize) < reserve {
		return ErrNoSpace
	}
	return nil
}

// Writer is a file being written.
type Writer struct {
	f    *os.File
	name string
	n    int64
	done bool
	fs   *Files
}

// Create starts a file of about size bytes (refused when the disk has
// not that much room).
func (f *Files) Create(size int64) (*Writer, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(f.dir, &st); err == nil && int64(st.Bavail)*int64(st.Bsize) < size+reserve {
		return nil, ErrNoSpace
	}
	name := newID()
	dir := filepath.Join(f.dir, name[:2])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("object file: %w", err)
	}
	fh, err := os.OpenFile(f.path(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, noSpace(fmt.Errorf("object file: %w", err))
	}
	return &Writer{f: fh, name: name, fs: f}, nil
}

func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	}
	return err
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.n += int64(n)
	if err != nil {
		err = noSpace(err)
	}
	return n, err
}

// ReadFrom lets io.Copy hand the file large writes.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.CopyBuffer(onlyWriter{w}, r, make([]byte, 1<<20))
	return n, err
}

type onlyWriter struct{ w *Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// Commit syncs the file and its folder: after it, the bytes survive a
// power cut. It returns the segment to record.
func (w *Writer) Commit() (Segment, error) {
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return Segment{}, noSpace(fmt.Errorf("sync object file: %w", err))
	}
	if err := w.f.Close(); err != nil {
		w.Abort()
		return Segment{}, noSpace(fmt.Errorf("close object file: %w", err))
	}
	w.done = true
	if d, err := os.Open(filepath.Dir(w.fs.path(w.name))); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if w.fs.shared != nil {
		if err := w.fs.share(w.name); err != nil {
			_ = os.Remove(w.fs.path(w.name))
			return Segment{}, err
		}
	}
	return Segment{File: w.name, Size: w.n}, nil
}

// share puts a committed file in the cluster's object store.
func (f *Files) share(name string) error {
	fh, err := os.Open(f.path(name))
	if err != nil {
		return err
	}
	defer fh.Close()
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if _, err := f.shared.Put(ctx, jetstream.ObjectMeta{Name: name}, fh); err != nil {
		return fmt.Errorf("share object file: %w", err)
	}
	return nil
}

// fetch copies a file another node took from the cluster's object store.
func (f *Files) fetch(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	res, err := f.shared.Get(ctx, name)
	if err != nil {
		return fmt.Errorf("fetch object file: %w", err)
	}
	defer res.Close()
	if err := os.MkdirAll(filepath.Dir(f.path(name)), 0o700); err != nil {
		return err
	}
	tmp := f.path(name) + ".fetch-" + newID()[:8]
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return noSpace(err)
	}
	_, err = io.Copy(out, res)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, f.path(name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return noSpace(fmt.Errorf("fetch object file: %w", err))
	}
	return nil
}

// Abort removes a file not committed; after Commit it does nothing.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	_ = w.f.Close()
	_ = os.Remove(w.fs.path(w.name))
}

func (f *Files) remove(name string) {
	if name == "" {
		return
	}
	_ = os.Remove(f.path(name))
	if f.shared != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = f.shared.Delete(ctx, name)
		cancel()
	}
}

// Open opens a segment for reading.
func (f *Files) Open(g Segment) (*os.File, error) {
	fh, err := os.Open(f.path(g.File))
	if errors.Is(err, os.ErrNotExist) && f.shared != nil {
		if err = f.fetch(g.File); err == nil {
			fh, err = os.Open(f.path(g.File))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("object file: %w", err)
	}
	return fh, nil
}

// sweep removes every file not in used.
func (f *Files) sweep(used map[string]bool) error {
	dirs, err := os.ReadDir(f.dir)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(f.dir, d.Name()))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !used[e.Name()] && strings.HasPrefix(e.Name(), d.Name()) {
				_ = os.Remove(filepath.Join(f.dir, d.Name(), e.Name()))
			}
		}
	}
	return nil
}

// Reader reads an object's bytes from off for n bytes, across its
// segments. Segments are opened as they are reached (an object may have
// 10,000); a read racing an overwrite of the object may therefore end
// early, never with another object's bytes.
func (s *Store) Reader(o *Object, off, n int64) (io.ReadCloser, error) {
	r := &segReader{fs: s.files, rest: n}
	for _, g := range o.Segments {
		if off >= g.Size {
			off -= g.Size
			continue
		}
		r.segs = append(r.segs, g)
		r.offs = append(r.offs, off)
		off = 0
	}
	// The first is opened now: a missing file fails the request before
	// any answer is written.
	if len(r.segs) > 0 {
		if err := r.advance(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

type segReader struct {
	fs   *Files
	segs []Segment
	offs []int64
	cur  *os.File
	sec  *io.SectionReader
	rest int64
}

func (r *segReader) advance() error {
	if r.cur != nil {
		_ = r.cur.Close()
		r.cur, r.sec = nil, nil
	}
	if len(r.segs) == 0 {
		return io.EOF
	}
	g, off := r.segs[0], r.offs[0]
	r.segs, r.offs = r.segs[1:], r.offs[1:]
	fh, err := r.fs.Open(g)
	if err != nil {
		return err
	}
	r.cur, r.sec = fh, io.NewSectionReader(fh, off, g.Size-off)
	return nil
}

func (r *segReader) Read(p []byte) (int, error) {
	for r.rest > 0 {
		if r.sec == nil {
			if err := r.advance(); err != nil {
				return 0, err
			}
		}
		if int64(len(p)) > r.rest {
			p = p[:r.rest]
		}
		n, err := r.sec.Read(p)
		r.rest -= int64(n)
		if err == io.EOF {
			r.sec = nil
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.EOF
}

func (r *segReader) Close() error {
	if r.cur != nil {
		_ = r.cur.Close()
		r.cur, r.sec = nil, nil
	}
	return nil
}

// Remove deletes a segment's file that no record names (any more).
func (f *Files) Remove(g Segment) { f.remove(g.File) }

// ReadObject reads a whole object of at most max bytes (a deployment
// package). Errors read as S3's code and message.
func (s *Store) ReadObject(ctx context.Context, bucket, key string, max int64) ([]byte, error) {
	o, err := s.Head(bucket, key)
	switch {
	case errors.Is(err, ErrNoSuchBucket):
		return nil, errors.New("NoSuchBucket. S3 Error Message: The specified bucket does not exist")
	case errors.Is(err, ErrNoSuchKey):
		return nil, errors.New("NoSuchKey. S3 Error Message: The specified key does not exist.")
	case err != nil:
		return nil, err
	case o.Size > max:
		return nil, fmt.Errorf("EntityTooLarge. S3 Error Message: the object is %d bytes, over the %d a package may have", o.Size, max)
	}
	rd, err := s.Reader(o, 0, o.Size)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	b := make([]byte, o.Size)
	if _, err := io.ReadFull(rd, b); err != nil {
		return nil, fmt.Errorf("InternalError. S3 Error Message: %v", err)
	}
	return b, ctx.Err()
}
