package objects

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratus-faas/stratus/internal/store"
)

// openStore opens an embedded store (a real NATS with JetStream) and the
// objects on it.
func openStore(t *testing.T, data string) (*Store, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{DataDir: data, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), st, filepath.Join(data, "objects"), slog.New(slog.DiscardHandler))
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return s, st
}

func put(t *testing.T, s *Store, bucket, key, body string) *Object {
	t.Helper()
	w, err := s.Files().Create(int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, body)
	seg, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	o := &Object{Bucket: bucket, Key: key, Size: int64(len(body)), ETag: "e", Segments: []Segment{seg}}
	if err := s.Put(context.Background(), o, false, ""); err != nil {
		t.Fatal(err)
	}
	return o
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, filepath.Base(p))
		}
		return nil
	})
	return out
}

func read(t *testing.T, s *Store, bucket, key string) string {
	t.Helper()
	o, err := s.Head(bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Reader(o, 0, o.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// Files no record names (a crash between a write and its record) go at
// the next start; an overwrite and a delete take their files with them;
// records and bytes survive a restart.
func TestFilesFollowRecords(t *testing.T) {
	data := t.TempDir()
	dir := filepath.Join(data, "objects")
	s, st := openStore(t, data)
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "b", "us-east-1"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "b", "k", "first")
	put(t, s, "b", "k", "second")
	put(t, s, "b", "gone", "x")
	if _, err := s.Delete(ctx, "b", "gone"); err != nil {
		t.Fatal(err)
	}
	if n := len(files(t, dir)); n != 1 {
		t.Errorf("%d files for one object: an overwrite or delete left its file", n)
	}
	// A write whose record never came, as a crash would leave it.
	w, _ := s.Files().Create(4)
	_, _ = io.WriteString(w, "lost")
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	st.Close()

	s, st = openStore(t, data)
	defer st.Close()
	defer s.Close()
	if got := read(t, s, "b", "k"); got != "second" {
		t.Errorf("after a restart: %q", got)
	}
	if n := len(files(t, dir)); n != 1 {
		t.Errorf("%d files after the start's sweep, want the one object's", n)
	}
}

// An upload neither completed nor aborted is removed, parts and all,
// once older than the bound.
func TestAbandonedUploadsExpire(t *testing.T) {
	data := t.TempDir()
	s, st := openStore(t, data)
	defer st.Close()
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "b", "us-east-1"); err != nil {
		t.Fatal(err)
	}
	u := &Upload{Bucket: "b", Key: "big"}
	if err := s.CreateUpload(ctx, u); err != nil {
		t.Fatal(err)
	}
	w, _ := s.Files().Create(4)
	_, _ = io.WriteString(w, "part")
	seg, _ := w.Commit()
	if err := s.PutPart(ctx, u, &Part{Number: 1, Size: 4, ETag: "e", Segment: seg}); err != nil {
		t.Fatal(err)
	}
	s.ExpireUploads(ctx)
	if _, err := s.Upload("b", "big", u.ID); err != nil {
		t.Fatalf("a fresh upload expired: %v", err)
	}
	s.now = func() time.Time { return time.Now().Add(uploadLifetime + time.Hour) }
	s.ExpireUploads(ctx)
	if _, err := s.Upload("b", "big", u.ID); err != ErrNoSuchUpload {
		t.Errorf("an abandoned upload is still there: %v", err)
	}
	for _, f := range files(t, filepath.Join(data, "objects")) {
		if strings.HasPrefix(f, seg.File) {
			t.Errorf("an expired upload's part file is still there")
		}
	}
	if err := s.DeleteBucket(ctx, "b"); err != nil {
		t.Errorf("the bucket of an expired upload: %v", err)
	}
}
