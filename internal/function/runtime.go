package function

import (
	"path"
	"strings"
)

// Runtime families Stratus runs.
const (
	FamilyProvided = "provided"
	FamilyNode     = "nodejs"
	FamilyPython   = "python"
)

var supported = []string{
	"provided", "provided.al2", "provided.al2023",
	"nodejs18.x", "nodejs20.x", "nodejs22.x", "nodejs24.x",
	"python3.9", "python3.10", "python3.11", "python3.12", "python3.13", "python3.14",
}

// SupportedRuntimes lists the Runtime values Stratus accepts.
func SupportedRuntimes() []string { return append([]string(nil), supported...) }

// Supported reports whether runtime is one Stratus can run.
func Supported(runtime string) bool {
	for _, r := range supported {
		if r == runtime {
			return true
		}
	}
	return false
}

// Family returns the runtime family of a supported runtime.
func Family(runtime string) string {
	switch {
	case strings.HasPrefix(runtime, "provided"):
		return FamilyProvided
	case strings.HasPrefix(runtime, "nodejs"):
		return FamilyNode
	case strings.HasPrefix(runtime, "python"):
		return FamilyPython
	}
	return ""
}

// IsProvided reports an OS-only runtime whose zip carries its own bootstrap.
func IsProvided(runtime string) bool { return Family(runtime) == FamilyProvided }

// splitHandler splits "dir/file.export" (Node.js) or "pkg.mod.func" /
// "dir/mod.func" (Python) into the module path and the exported name.
func splitHandler(runtime, handler string) (module, export string, err error) {
	switch Family(runtime) {
	case FamilyProvided:
		return "", "", nil
	case FamilyNode:
		i := strings.LastIndex(handler, ".")
		if i <= 0 || i == len(handler)-1 {
			return "", "", invalidf("Handler %q must have the form file.export, such as index.handler", handler)
		}
		return handler[:i], handler[i+1:], nil
	case FamilyPython:
		i := strings.LastIndex(handler, ".")
		if i <= 0 || i == len(handler)-1 {
			return "", "", invalidf("Handler %q must have the form module.function, such as lambda_function.lambda_handler", handler)
		}
		return handler[:i], handler[i+1:], nil
	}
	return "", "", invalidf("unsupported runtime %q", runtime)
}

// HandlerFiles lists the files in the package, any one of which satisfies
// the handler. Empty means the runtime needs none besides its bootstrap.
func HandlerFiles(runtime, handler string) []string {
	module, _, err := splitHandler(runtime, handler)
	if err != nil {
		return nil
	}
	switch Family(runtime) {
	case FamilyProvided:
		return []string{"bootstrap"}
	case FamilyNode:
		m := path.Clean(module)
		return []string{m + ".js", m + ".mjs", m + ".cjs"}
	case FamilyPython:
		m := module
		if !strings.Contains(m, "/") {
			m = strings.ReplaceAll(m, ".", "/")
		}
		m = path.Clean(m)
		return []string{m + ".py", m + "/__init__.py", m + ".pyc"}
	}
	return nil
}
