package function

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
)

// Package describes a validated deployment package.
type Package struct {
	Sha256       string // base64, as AWS reports CodeSha256
	Size         int64
	UnzippedSize int64
	Files        map[string]bool // regular files, slash-separated, relative
}

// InspectZip validates a zipped deployment package: that it is a zip, that
// it fits Lambda's limits, and that no entry escapes the package folder.
func InspectZip(data []byte) (*Package, error) {
	if len(data) > MaxZipBytes {
		return nil, fmt.Errorf("%w: Zipped size must be smaller than %d bytes", ErrTooLarge, MaxZipBytes)
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, invalidf("Could not unzip uploaded file. Please check your file, then try to upload again.")
	}
	p := &Package{Size: int64(len(data)), Files: make(map[string]bool, len(zr.File))}
	for _, f := range zr.File {
		name, err := CleanEntry(f.Name)
		if err != nil {
			return nil, err
		}
		p.UnzippedSize += int64(f.UncompressedSize64)
		if p.UnzippedSize > MaxUnzippedBytes || f.UncompressedSize64 > MaxUnzippedBytes {
			return nil, invalidf("Unzipped size must be smaller than %d bytes", MaxUnzippedBytes)
		}
		if name != "" && !f.FileInfo().IsDir() {
			p.Files[name] = true
		}
	}
	p.Sha256 = CodeSha256(data)
	return p, nil
}

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

// CheckHandler verifies the package holds what the runtime will start.
func (p *Package) CheckHandler(runtime, handler string) error {
	want := HandlerFiles(runtime, handler)
	if len(want) == 0 {
		return nil
	}
	for _, f := range want {
		if p.Files[f] {
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
