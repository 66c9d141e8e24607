package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/store"
)

// Layers live in their own bucket: NAME holds a layer's counter (the
// last version number ever given), NAME.VERSION each version. Versions
// are immutable but for their policy; their zips are in the code store
// under keys of their own (function.LayerKey).

// ErrLayerNotFound: no such layer version.
var ErrLayerNotFound = errors.New("layer version not found")

// PublishLayer stores a new version of a layer from its zip.
func (r *Registry) PublishLayer(ctx context.Context, lv *function.LayerVersion, zip []byte) (*function.LayerVersion, error) {
	if err := function.ValidateLayerName(lv.Name); err != nil {
		return nil, err
	}
	if err := r.st.Writable(); err != nil {
		return nil, err
	}
	pkg, err := function.InspectZip(zip)
	if err != nil {
		return nil, err
	}
	lv.CodeSha256, lv.CodeSize, lv.UnzippedSize = pkg.Sha256, pkg.Size, pkg.UnzippedSize
	if err := r.code.put(ctx, lv.Key(), zip); err != nil {
		return nil, err
	}
	kv := r.st.Layers
	for range 10 {
		var counter function.LayerVersion
		var rev uint64
		e, err := kv.Get(ctx, lv.Name)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return nil, r.st.Failed(fmt.Errorf("read layer: %w", err))
		default:
			_ = json.Unmarshal(e.Value(), &counter)
			rev = e.Revision()
		}
		lv.Version = counter.LastVersion + 1
		next, _ := json.Marshal(function.LayerVersion{Name: lv.Name, LastVersion: lv.Version})
		if rev == 0 {
			_, err = kv.Create(ctx, lv.Name, next)
		} else {
			_, err = kv.Update(ctx, lv.Name, next, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || store.WrongRevision(err) {
			continue // another publish took this number
		}
		if err != nil {
			return nil, r.st.Failed(fmt.Errorf("number layer version: %w", err))
		}
		lv.Created = r.now().UTC()
		v, _ := json.Marshal(lv)
		if _, err := kv.Create(ctx, layerKey(lv.Name, lv.Version), v); err != nil {
			return nil, r.st.Failed(fmt.Errorf("store layer version: %w", err))
		}
		return lv, nil
	}
	return nil, fmt.Errorf("%w: layer %s is being published by another request; retry", ErrConflict, lv.Name)
}

func layerKey(name string, version int) string { return name + "." + strconv.Itoa(version) }

// Layer returns one version of a layer.
func (r *Registry) Layer(ctx context.Context, name string, version int) (*function.LayerVersion, error) {
	e, err := r.st.Layers.Get(ctx, layerKey(name, version))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrLayerNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read layer version: %w", err)
	}
	var lv function.LayerVersion
	if err := json.Unmarshal(e.Value(), &lv); err != nil {
		return nil, err
	}
	return &lv, nil
}

// LayerVersions lists the versions of one layer (name "") or of all,
// newest first within a layer.
func (r *Registry) LayerVersions(ctx context.Context, name string) ([]*function.LayerVersion, error) {
	filter := ">"
	if name != "" {
		filter = name + ".*"
	}
	lister, err := r.st.Layers.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	var out []*function.LayerVersion
	for k := range lister.Keys() {
		n, v, ok := strings.Cut(k, ".")
		if !ok {
			continue // a counter
		}
		ver, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		if lv, err := r.Layer(ctx, n, ver); err == nil {
			out = append(out, lv)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version > out[j].Version
	})
	return out, nil
}

// DeleteLayerVersion removes a version; functions that use it keep it
// (its zip stays while any refers to it).
func (r *Registry) DeleteLayerVersion(ctx context.Context, name string, version int) error {
	lv, err := r.Layer(ctx, name, version)
	if errors.Is(err, ErrLayerNotFound) {
		return nil // as Lambda: deleting what is not there succeeds
	}
	if err != nil {
		return err
	}
	if err := r.st.Layers.Purge(ctx, layerKey(name, version)); err != nil {
		return r.st.Failed(fmt.Errorf("delete layer version: %w", err))
	}
	r.collectLayer(ctx, lv.Key())
	return nil
}

// collectLayer removes a layer zip no function and no version refers to.
func (r *Registry) collectLayer(ctx context.Context, key string) {
	r.mu.RLock()
	for _, e := range r.fns {
		if e.fn == nil {
			continue
		}
		for _, l := range e.fn.Layers {
			if l.Key == key {
				r.mu.RUnlock()
				return
			}
		}
	}
	r.mu.RUnlock()
	all, err := r.LayerVersions(ctx, "")
	if err != nil {
		return
	}
	for _, lv := range all {
		if lv.Key() == key {
			return
		}
	}
	if err := r.code.remove(ctx, key); err != nil {
		r.log.Warn("could not remove an unused layer", "code", key, "err", err)
	}
}

// UpdateLayerPolicy changes a version's policy with change.
func (r *Registry) UpdateLayerPolicy(ctx context.Context, name string, version int, change func(*function.LayerVersion) error) (*function.LayerVersion, error) {
	for range 5 {
		e, err := r.st.Layers.Get(ctx, layerKey(name, version))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, ErrLayerNotFound
		}
		if err != nil {
			return nil, err
		}
		var lv function.LayerVersion
		if err := json.Unmarshal(e.Value(), &lv); err != nil {
			return nil, err
		}
		if err := change(&lv); err != nil {
			return nil, err
		}
		v, _ := json.Marshal(lv)
		if _, err := r.st.Layers.Update(ctx, layerKey(name, version), v, e.Revision()); err == nil {
			return &lv, nil
		} else if !store.WrongRevision(err) {
			return nil, r.st.Failed(err)
		}
	}
	return nil, fmt.Errorf("%w: the layer version is being changed by another request; retry", ErrConflict)
}

// LayerZip returns a layer version's zip.
func (r *Registry) LayerZip(ctx context.Context, key string) ([]byte, error) {
	return r.code.zip(ctx, key)
}

// OptDir is the tree of a function's layers, extracted in order (a later
// layer's file replaces an earlier one's), as every instance of it sees
// /opt; "" when it has none. Built once per node and combination.
func (r *Registry) OptDir(ctx context.Context, fn *function.Function) (string, error) {
	if len(fn.Layers) == 0 {
		return "", nil
	}
	h := sha256.New()
	for _, l := range fn.Layers {
		io.WriteString(h, l.Key+"\n")
	}
	dst := filepath.Join(r.code.root, ".opt", hex.EncodeToString(h.Sum(nil)))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	unlock := r.code.lock(dst)
	defer unlock()
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".merge-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	for _, l := range fn.Layers {
		src, err := r.code.dir(ctx, l.Key)
		if err == nil {
			err = mergeTree(src, tmp)
		}
		if err != nil {
			_ = os.RemoveAll(tmp)
			return "", fmt.Errorf("layer %s: %w", l.ARN, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	return dst, nil
}

// mergeTree copies src over dst without ever following a link: each
// folder it writes into is one it made or checked to be a real folder
// (an earlier layer's link there is replaced), so a layer cannot make a
// later one's files land outside dst.
func mergeTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		cur, lerr := os.Lstat(target)
		switch {
		case d.IsDir():
			if lerr == nil && cur.IsDir() {
				return nil
			}
			if lerr == nil {
				if err := os.RemoveAll(target); err != nil {
					return err
				}
			}
			return os.Mkdir(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if lerr == nil {
				if err := os.RemoveAll(target); err != nil {
					return err
				}
			}
			return os.Symlink(link, target)
		default:
			if lerr == nil {
				if err := os.RemoveAll(target); err != nil {
					return err
				}
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(p, target, info.Mode().Perm())
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
