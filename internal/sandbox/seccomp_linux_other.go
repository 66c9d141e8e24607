//go:build linux && !amd64 && !arm64

package sandbox

// No filter on other architectures yet: their numbers are untested.
const (
	nativeArch = 0
	abiBit     = 0
)

var archDenied []uintptr
