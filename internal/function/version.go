package function

import (
	"regexp"
	"strconv"
	"time"
)

// Alias names a version, optionally sending a share of traffic to a second one.
type Alias struct {
	Name            string             `json:"name"`
	Function        string             `json:"function"`
	FunctionVersion string             `json:"functionVersion"`
	Description     string             `json:"description,omitempty"`
	Weights         map[string]float64 `json:"weights,omitempty"` // AdditionalVersionWeights
	RevisionID      string             `json:"revisionId"`
}

// Concurrency holds a function's reserved concurrency and provisioned
// concurrency per qualifier.
type Concurrency struct {
	Function    string                  `json:"function"`
	Reserved    *int                    `json:"reserved,omitempty"`
	Provisioned map[string]*Provisioned `json:"provisioned,omitempty"`
	// RecursiveLoop is the function's recursion setting (Allow or
	// Terminate, "" for Terminate). It lives with concurrency, the other
	// setting of the whole function that changing must not restart its
	// instances (a change of the configuration does).
	RecursiveLoop string `json:"recursiveLoop,omitempty"`
}

// Provisioned is a provisioned concurrency request for one version or alias.
type Provisioned struct {
	Requested    int       `json:"requested"`
	LastModified time.Time `json:"lastModified"`
}

var aliasRE = regexp.MustCompile(`^(?:[a-zA-Z0-9_-]*[a-zA-Z_-][a-zA-Z0-9_-]*)$`)

// ValidateAliasName checks an alias name: letters, digits, - and _, not
// all digits (those are versions), at most 128.
func ValidateAliasName(name string) error {
	if name == "" || len(name) > 128 || !aliasRE.MatchString(name) || name == Latest {
		return invalidf("Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)", name)
	}
	return nil
}

// IsVersion reports whether q names a published version.
func IsVersion(q string) bool {
	n, err := strconv.Atoi(q)
	return err == nil && n > 0 && strconv.Itoa(n) == q
}

// ValidateWeights checks AdditionalVersionWeights: one other version, a
// weight between 0 and 1.
func ValidateWeights(primary string, w map[string]float64) error {
	if len(w) > 1 {
		return invalidf("AdditionalVersionWeights takes at most one version")
	}
	for v, weight := range w {
		if !IsVersion(v) {
			return invalidf("AdditionalVersionWeights: %q is not a published version", v)
		}
		if v == primary {
			return invalidf("AdditionalVersionWeights: version %s is already the alias's FunctionVersion", v)
		}
		if weight < 0 || weight > 1 {
			return invalidf("AdditionalVersionWeights: weight %v must be between 0.0 and 1.0", weight)
		}
	}
	if len(w) > 0 && !IsVersion(primary) {
		return invalidf("an alias with AdditionalVersionWeights must point at a published version, not %s", primary)
	}
	return nil
}

// SameCode reports whether two records would make the same version: what
// PublishVersion compares to decide there is nothing new to publish.
func SameCode(a, b *Function) bool {
	if a.CodeSha256 != b.CodeSha256 || a.Runtime != b.Runtime || a.Handler != b.Handler || a.Timeout != b.Timeout ||
		a.MemorySize != b.MemorySize || a.EphemeralStorage != b.EphemeralStorage || a.Role != b.Role || len(a.Environment) != len(b.Environment) {
		return false
	}
	for k, v := range a.Environment {
		if b.Environment[k] != v {
			return false
		}
	}
	return true
}

// VersionLabel is what Lambda reports as Version: $LATEST or the number.
func (f *Function) VersionLabel() string {
	if f.Version == "" {
		return Latest
	}
	return f.Version
}
