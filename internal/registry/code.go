package registry

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
)

// codeCache keeps zips in the object store (shared by every node) and
// their extracted trees on this node's disk, keyed by hex SHA-256.
type codeCache struct {
	obj  jetstream.ObjectStore
	root string

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func newCodeCache(obj jetstream.ObjectStore, root string) *codeCache {
	return &codeCache{obj: obj, root: root, locks: make(map[string]*sync.Mutex)}
}

func (c *codeCache) lock(key string) func() {
	c.mu.Lock()
	l, ok := c.locks[key]
	if !ok {
		l = new(sync.Mutex)
		c.locks[key] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func (c *codeCache) put(ctx context.Context, key string, data []byte) error {
	if _, err := c.obj.GetInfo(ctx, key); err == nil {
		return nil // content-addressed: already stored
	}
	if _, err := c.obj.PutBytes(ctx, key, data); err != nil {
		return fmt.Errorf("store code: %w", err)
	}
	return nil
}

func (c *codeCache) zip(ctx context.Context, key string) ([]byte, error) {
	data, err := c.obj.GetBytes(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("load code %s: %w", key, err)
	}
	return data, nil
}

func (c *codeCache) remove(ctx context.Context, key string) error {
	unlock := c.lock(key)
	defer unlock()
	if err := os.RemoveAll(filepath.Join(c.root, key)); err != nil {
		return err
	}
	if err := c.obj.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	return nil
}

// dir returns the extracted tree, extracting it once per node.
func (c *codeCache) dir(ctx context.Context, key string) (string, error) {
	if key == "" {
		return "", errors.New("function has no code")
	}
	dst := filepath.Join(c.root, key)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	unlock := c.lock(key)
	defer unlock()
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	data, err := c.zip(ctx, key)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(c.root, 0o755); err != nil {
		return "", fmt.Errorf("create code folder: %w", err)
	}
	tmp, err := os.MkdirTemp(c.root, ".extract-")
	if err != nil {
		return "", fmt.Errorf("create code folder: %w", err)
	}
	if err := extract(data, tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	// Rename makes the tree appear whole or not at all, even across a crash.
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("install code: %w", err)
	}
	return dst, nil
}

func extract(data []byte, dst string) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("open zip: %w", err)
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return err
	}
	// Links come last, once every file and folder is written, so that no
	// write can pass through one (the package was checked for entries
	// below links; this holds for packages stored before that check too).
	var links []*zip.File
	for _, f := range zr.File {
		name, err := function.CleanEntry(f.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		p := filepath.Join(dst, filepath.FromSlash(name))
		mode := f.Mode()
		switch {
		case mode.IsDir():
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		case mode&os.ModeSymlink != 0:
			links = append(links, f)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// Code is read-only to the function; keep exec bits, and always
		// make bootstrap executable since zips made on Windows drop them.
		perm := os.FileMode(0o444)
		if mode&0o111 != 0 || name == "bootstrap" {
			perm = 0o555
		}
		if err := writeEntry(f, p, perm); err != nil {
			return err
		}
	}
	root, err := filepath.EvalSymlinks(dst)
	if err != nil {
		return err
	}
	for _, f := range links {
		name, _ := function.CleanEntry(f.Name)
		p := filepath.Join(dst, filepath.FromSlash(name))
		target, err := linkTarget(f)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		// The folder must be the package's own, not one reached through
		// an earlier link.
		if parent, err := filepath.EvalSymlinks(filepath.Dir(p)); err != nil || !within(parent, root) {
			return fmt.Errorf("unzip %s: the link lies below another link", f.Name)
		}
		// Symlink fails on an existing name: nothing is replaced.
		if err := os.Symlink(target, p); err != nil {
			return fmt.Errorf("unzip %s: %w", f.Name, err)
		}
	}
	return nil
}

func within(p, root string) bool {
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}

func linkTarget(f *zip.File) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", fmt.Errorf("unzip %s: %w", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return "", fmt.Errorf("unzip %s: %w", f.Name, err)
	}
	return string(b), nil
}

func writeEntry(f *zip.File, p string, perm os.FileMode) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("unzip %s: %w", f.Name, err)
	}
	defer rc.Close()
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	// The size was checked against the limit; LimitReader guards a lying header.
	if _, err := io.Copy(out, io.LimitReader(rc, function.MaxUnzippedBytes)); err != nil {
		out.Close()
		return fmt.Errorf("unzip %s: %w", f.Name, err)
	}
	return out.Close()
}
