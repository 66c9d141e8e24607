// Package runtimes knows how to start each supported runtime and carries
// the Node.js and Python runtime clients, embedded in the binary.
package runtimes

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed node/index.mjs python/bootstrap.py
var clients embed.FS

// Set holds the runtime clients installed on disk and the interpreters
// that run each runtime.
type Set struct {
	Dir string // host folder holding node/ and python/

	interp map[string]Interpreter // by runtime (python3.11, nodejs20.x)
	// NodeSDK is the node_modules folder holding the AWS SDK for
	// JavaScript v3 that Node.js functions get, "" when there is none.
	NodeSDK string
}

// Interpreter is a host interpreter and the runtime it runs.
type Interpreter struct {
	Runtime string   // the runtime it serves
	Path    string   // its executable (resolved past version-manager shims)
	Version string   // its own version: 3.11.7, 20.20.2
	Prefix  []string // folders of its installation instances must see
	// MappedFrom is the runtime whose interpreter this is when the
	// operator mapped Runtime to it (--runtime-map); "" otherwise.
	MappedFrom string
	// SDK is the version of boto3 beside a Python interpreter, "" if none.
	SDK string
	// SitePackages are a Python interpreter's site folders, where the
	// runtime client finds the SDK (and nothing else) for functions.
	SitePackages []string
}

// Options say where interpreters and SDKs come from.
type Options struct {
	// Map gives runtimes an interpreter explicitly: runtime to another
	// runtime (whose interpreter it shares) or to an executable's path.
	Map map[string]string
	// NodeSDK is a folder holding node_modules/@aws-sdk (npm install
	// --prefix DIR ...); "" or a folder without it: none.
	NodeSDK string
}

// Install writes the embedded runtime clients under root (in a folder named
// for their content, so a new binary never runs an old client) and finds
// the host's interpreters.
func Install(root string, opts Options) (*Set, error) {
	h := sha256.New()
	_ = fs.WalkDir(clients, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := clients.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	dir := filepath.Join(root, hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(dir); err != nil {
		tmp, err := os.MkdirTemp(root, ".install-")
		if err != nil {
			if err := os.MkdirAll(root, 0o755); err != nil {
				return nil, fmt.Errorf("create runtime folder: %w", err)
			}
			if tmp, err = os.MkdirTemp(root, ".install-"); err != nil {
				return nil, fmt.Errorf("create runtime folder: %w", err)
			}
		}
		err = fs.WalkDir(clients, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			dst := filepath.Join(tmp, filepath.FromSlash(p))
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			b, err := clients.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o444)
		})
		if err == nil {
			err = os.Chmod(tmp, 0o755)
		}
		if err == nil {
			err = os.Rename(tmp, dir)
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			_ = os.RemoveAll(tmp)
			if _, statErr := os.Stat(dir); statErr != nil {
				return nil, fmt.Errorf("install runtime clients: %w", err)
			}
		}
	}
	// The mount point of the Node.js SDK in sandboxes (sandbox.SDKFolder).
	if err := os.MkdirAll(filepath.Join(dir, "sdk", "node_modules"), 0o755); err != nil {
		return nil, fmt.Errorf("install runtime clients: %w", err)
	}
	set := &Set{Dir: dir, interp: findInterpreters()}
	for rt, target := range opts.Map {
		if err := set.mapRuntime(rt, target); err != nil {
			return nil, err
		}
	}
	if opts.NodeSDK != "" {
		if fi, err := os.Stat(filepath.Join(opts.NodeSDK, "node_modules", "@aws-sdk")); err == nil && fi.IsDir() {
			abs, err := filepath.Abs(filepath.Join(opts.NodeSDK, "node_modules"))
			if err != nil {
				return nil, err
			}
			set.NodeSDK = abs
		}
	}
	return set, nil
}
