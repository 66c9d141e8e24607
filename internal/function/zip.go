package function

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Package describes a validated deployment package.
type Package struct {
	Sha256       string // base64, as AWS reports CodeSha256
	Size         int64
	UnzippedSize int64
	Files        map[string]bool   // regular files, slash-separated, relative
	Links        map[string]string // symbolic links: name to target, as stored
}

// Limits of the file systems packages are unpacked on (Linux: NAME_MAX and
// PATH_MAX, less room for the folder the code lives in).
const (
	maxNameBytes = 255
	maxPathBytes = 3072
	maxLinkHops  = 40
)

// InspectZip validates a zipped deployment package: that it is a zip whose
// entries are what their headers say, that it fits Lambda's limits, and
// that it can be unpacked on Linux as it is: no entry escapes the package
// folder, none is both a file and a folder or passes through a symbolic
// link, and no name is too long. Every entry is read once, so a header
// that lies about a size or checksum is found here, not at the first
// invocation.
func InspectZip(data []byte) (*Package, error) { return inspect(data, true) }

// ListZip reads a package already inspected at upload: its names and
// links, without reading every file through again (a configuration change
// checks the handler against it).
func ListZip(data []byte) (*Package, error) { return inspect(data, false) }

func inspect(data []byte, verify bool) (*Package, error) {
	if len(data) > MaxZipBytes {
		return nil, Errorf(ErrTooLarge, "Zipped size must be smaller than %d bytes", MaxZipBytes)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, invalidf("Could not unzip uploaded file. Please check your file, then try to upload again.")
	}
	p := &Package{Size: int64(len(data)), Files: make(map[string]bool, len(zr.File)), Links: map[string]string{}}
	dirs := map[string]bool{}
	for _, f := range zr.File {
		name, err := CleanEntry(f.Name)
		if err != nil {
			return nil, err
		}
		if name == "" {
			continue
		}
		if err := checkName(name); err != nil {
			return nil, err
		}
		p.UnzippedSize += int64(f.UncompressedSize64)
		if p.UnzippedSize > MaxUnzippedBytes || f.UncompressedSize64 > MaxUnzippedBytes {
			return nil, invalidf("Unzipped size must be smaller than %d bytes", MaxUnzippedBytes)
		}
		mode := f.Mode()
		if mode.IsDir() {
			dirs[name] = true
			continue
		}
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
		link := mode&fs.ModeSymlink != 0
		if !link && !verify {
			p.Files[name] = true
			continue
		}
		content, err := readEntry(f, link)
		if err != nil {
			return nil, invalidf("Could not unzip uploaded file: entry %q is damaged (%v)", f.Name, err)
		}
		if link {
			if len(content) == 0 || bytes.IndexByte(content, 0) >= 0 {
				return nil, invalidf("Could not unzip uploaded file: symbolic link %q has no valid target", f.Name)
			}
			p.Links[name] = string(content)
			continue
		}
		p.Files[name] = true
	}
	for name := range p.Files {
		if dirs[name] {
			return nil, invalidf("Could not unzip uploaded file: %q is both a file and a folder", name)
		}
	}
	for name := range p.Links {
		if dirs[name] || p.Files[name] {
			return nil, invalidf("Could not unzip uploaded file: %q is both a symbolic link and a file or folder", name)
		}
	}
	// An entry below a symbolic link would be written wherever it points.
	all := make([]string, 0, len(p.Files)+len(dirs)+len(p.Links))
	for _, names := range []map[string]bool{p.Files, dirs} {
		for name := range names {
			all = append(all, name)
		}
	}
	for name := range p.Links {
		all = append(all, name)
	}
	for _, name := range all {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if _, ok := p.Links[d]; ok {
				return nil, invalidf("Could not unzip uploaded file: entry %q lies below the symbolic link %q", name, d)
			}
		}
	}
	p.Sha256 = CodeSha256(data)
	return p, nil
}

// checkName refuses names the file system cannot hold.
func checkName(name string) error {
	if len(name) > maxPathBytes {
		return invalidf("Could not unzip uploaded file: entry %.64q... is longer than %d bytes", name, maxPathBytes)
	}
	for _, part := range strings.Split(name, "/") {
		if len(part) > maxNameBytes {
			return invalidf("Could not unzip uploaded file: entry %.64q... has a name longer than %d bytes", name, maxNameBytes)
		}
		if strings.IndexByte(part, 0) >= 0 {
			return invalidf("Could not unzip uploaded file: entry %q has a NUL in its name", name)
		}
	}
	return nil
}

// readEntry reads an entry through, checking its size and checksum
// against its header; a symbolic link's target is returned.
func readEntry(f *zip.File, keep bool) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if keep {
		return io.ReadAll(io.LimitReader(rc, 4096))
	}
	n, err := io.Copy(io.Discard, rc)
	if err != nil {
		return nil, err
	}
	if uint64(n) != f.UncompressedSize64 {
		return nil, errors.New("its size is not the one its header gives")
	}
	return nil, nil
}

// resolve follows symbolic links from name within the package, as the
// function will see it at /var/task. It returns the regular file reached,
// or why there is none.
func (p *Package) resolve(name string) (string, error) {
	for range maxLinkHops {
		target, ok := p.Links[name]
		if !ok {
			if p.Files[name] {
				return name, nil
			}
			return "", errors.New("leads nowhere")
		}
		var next string
		if rest, ok := strings.CutPrefix(target, taskRoot+"/"); ok {
			next = path.Clean(rest)
		} else if path.IsAbs(target) {
			return "", fmt.Errorf("leads outside the package, to %s", target)
		} else {
			next = path.Join(path.Dir(name), target)
		}
		if next == ".." || strings.HasPrefix(next, "../") {
			return "", fmt.Errorf("leads outside the package, to %s", target)
		}
		name = next
	}
	return "", errors.New("is a loop of symbolic links")
}

// taskRoot is where the function sees its code.
const taskRoot = "/var/task"

// CleanEntry normalises a zip entry name and refuses absolute paths and
// parent references, which would let a package write outside its folder.
func CleanEntry(name string) (string, error) {
	n := strings.ReplaceAll(name, "\\", "/")
	if strings.HasPrefix(n, "/") {
		return "", invalidf("Could not unzip uploaded file: entry %q has an absolute path", name)
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", invalidf("Could not unzip uploaded file: entry %q leaves the package", name)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// CheckHandler verifies the package holds what the runtime will start: a
// regular file, or a symbolic link that reaches one inside the package.
func (p *Package) CheckHandler(runtime, handler string) error {
	want := HandlerFiles(runtime, handler)
	if len(want) == 0 {
		return nil
	}
	for _, f := range want {
		if p.Files[f] {
			return nil
		}
		if _, ok := p.Links[f]; ok {
			if _, err := p.resolve(f); err != nil {
				return invalidf("The deployment package's %s is a symbolic link that %v", f, err)
			}
			return nil
		}
	}
	if IsProvided(runtime) {
		return invalidf("The deployment package of runtime %s must contain an executable file named bootstrap at its root", runtime)
	}
	return invalidf("The deployment package does not contain the handler file of %q: expected one of %s", handler, strings.Join(want, ", "))
}

// CodeSha256 returns the base64 SHA-256 digest, as AWS computes CodeSha256.
func CodeSha256(data []byte) string {
	sum := sha256.Sum256(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ShaKey turns a base64 CodeSha256 into a hex string safe for keys and paths.
func ShaKey(b64 string) string {
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(raw)
}
