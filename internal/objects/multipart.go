package objects

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CreateUpload starts a multipart upload.
func (s *Store) CreateUpload(ctx context.Context, u *Upload) error {
	if _, err := s.Bucket(u.Bucket); err != nil {
		return err
	}
	if err := s.writable(); err != nil {
		return err
	}
	u.ID = newID()
	u.Initiated = s.now().UTC().Truncate(time.Millisecond)
	v, _ := json.Marshal(u)
	if _, err := s.kv.Create(ctx, uploadKey(u.Bucket, u.ID), v); err != nil {
		return s.st.Failed(fmt.Errorf("record upload: %w", err))
	}
	s.mu.Lock()
	s.uploads[u.ID] = u
	s.mu.Unlock()
	return nil
}

// Upload returns an upload in progress of bucket and key.
func (s *Store) Upload(bucket, key, id string) (*Upload, error) {
	if _, err := s.Bucket(bucket); err != nil {
		return nil, err
	}
	s.mu.RLock()
	u := s.uploads[id]
	s.mu.RUnlock()
	if u == nil || u.Bucket != bucket || u.Key != key {
		return nil, ErrNoSuchUpload
	}
	return u, nil
}

// Uploads lists a bucket's uploads in progress, by key then time.
func (s *Store) Uploads(bucket, prefix string) []*Upload {
	s.mu.RLock()
	var out []*Upload
	for _, u := range s.uploads {
		if u.Bucket == bucket && strings.HasPrefix(u.Key, prefix) {
			out = append(out, u)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].Initiated.Before(out[j].Initiated)
	})
	return out
}

// PutPart records an uploaded part (its segment written and synced),
// replacing one of the same number.
func (s *Store) PutPart(ctx context.Context, u *Upload, p *Part) error {
	p.Modified = s.now().UTC().Truncate(time.Millisecond)
	v, _ := json.Marshal(p)
	key := partKey(u.ID, p.Number)
	var old *Part
	if e, err := s.kv.Get(ctx, key); err == nil {
		old = new(Part)
		_ = json.Unmarshal(e.Value(), old)
	}
	if _, err := s.kv.Put(ctx, key, v); err != nil {
		return s.st.Failed(fmt.Errorf("record part: %w", err))
	}
	// An upload aborted meanwhile leaves no part behind.
	if _, err := s.kv.Get(ctx, uploadKey(u.Bucket, u.ID)); errors.Is(err, jetstream.ErrKeyNotFound) {
		_ = s.kv.Purge(ctx, key)
		s.files.remove(p.Segment.File)
		return ErrNoSuchUpload
	}
	if old != nil && old.Segment.File != p.Segment.File {
		s.files.remove(old.Segment.File)
	}
	return nil
}

// Parts lists an upload's parts by number.
func (s *Store) Parts(ctx context.Context, id string) ([]*Part, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, "p."+id+".*")
	if err != nil {
		return nil, fmt.Errorf("list parts: %w", err)
	}
	var out []*Part
	for k := range lister.Keys() {
		e, err := s.kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var p Part
		if json.Unmarshal(e.Value(), &p) == nil {
			out = append(out, &p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// Chosen is a part as CompleteMultipartUpload names it.
type Chosen struct {
	Number int
	ETag   string
}

// Complete makes the object of an upload from the chosen parts. The
// object's ETag is the MD5 of the parts' MD5s, then -N, as S3's.
func (s *Store) Complete(ctx context.Context, u *Upload, chosen []Chosen, o *Object) ([]*Part, error) {
	if len(chosen) == 0 {
		return nil, fmt.Errorf("%w: you must specify at least one part", ErrInvalidPart)
	}
	parts, err := s.Parts(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	byNum := map[int]*Part{}
	for _, p := range parts {
		byNum[p.Number] = p
	}
	var used []*Part
	sum := md5.New()
	for i, c := range chosen {
		if i > 0 && c.Number <= chosen[i-1].Number {
			return nil, ErrInvalidPartOrder
		}
		p := byNum[c.Number]
		if p == nil || strings.Trim(c.ETag, `"`) != p.ETag {
			return nil, ErrInvalidPart
		}
		if i < len(chosen)-1 && p.Size < MinPartSize {
			return nil, fmt.Errorf("%w: part %d is %d bytes, under the 5 MiB minimum of every part but the last", ErrEntityTooSmall, p.Number, p.Size)
		}
		raw, _ := hex.DecodeString(p.ETag)
		sum.Write(raw)
		used = append(used, p)
		o.Segments = append(o.Segments, p.Segment)
		o.Size += p.Size
	}
	o.ETag = hex.EncodeToString(sum.Sum(nil)) + fmt.Sprintf("-%d", len(used))
	o.Parts = len(used)
	if err := s.Put(ctx, o, false, ""); err != nil {
		o.Segments = nil
		return nil, err
	}
	// The parts not chosen go with the upload; the chosen ones' files are
	// now the object's.
	kept := map[int]bool{}
	for _, p := range used {
		kept[p.Number] = true
	}
	for _, p := range parts {
		if !kept[p.Number] {
			s.files.remove(p.Segment.File)
		}
	}
	s.dropUpload(ctx, u, parts)
	return used, nil
}

// Abort ends an upload and removes its parts.
func (s *Store) Abort(ctx context.Context, u *Upload) error {
	parts, err := s.Parts(ctx, u.ID)
	if err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, uploadKey(u.Bucket, u.ID)); err != nil {
		return s.st.Failed(fmt.Errorf("abort upload: %w", err))
	}
	for _, p := range parts {
		s.files.remove(p.Segment.File)
	}
	s.dropUpload(ctx, u, parts)
	return nil
}

func (s *Store) dropUpload(ctx context.Context, u *Upload, parts []*Part) {
	_ = s.kv.Purge(ctx, uploadKey(u.Bucket, u.ID))
	for _, p := range parts {
		_ = s.kv.Purge(ctx, partKey(u.ID, p.Number))
	}
	s.mu.Lock()
	delete(s.uploads, u.ID)
	s.mu.Unlock()
}

// expireUploads aborts uploads older than uploadLifetime, hourly: an
// abandoned upload's parts do not hold the disk for ever.
func (s *Store) expireUploads(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		s.ExpireUploads(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ExpireUploads aborts every upload older than uploadLifetime.
func (s *Store) ExpireUploads(ctx context.Context) {
	s.mu.RLock()
	var old []*Upload
	for _, u := range s.uploads {
		if s.now().Sub(u.Initiated) > uploadLifetime {
			old = append(old, u)
		}
	}
	s.mu.RUnlock()
	for _, u := range old {
		if err := s.Abort(ctx, u); err != nil {
			s.log.Warn("objects: could not expire an abandoned upload", "upload", u.ID, "err", err)
		}
	}
}
