// Package function defines a Lambda function's configuration: its fields,
// Lambda's defaults and limits, validation, and ARNs. It is pure: no I/O
// beyond reading a zip held in memory.
package function

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Limits and defaults as on AWS Lambda.
const (
	DefaultTimeout    = 3     // seconds
	MaxTimeout        = 900   // seconds
	DefaultMemory     = 128   // MB
	MinMemory         = 128   // MB
	MaxMemory         = 10240 // MB
	DefaultEphemeral  = 512   // MB
	MinEphemeral      = 512   // MB
	MaxEphemeral      = 10240 // MB
	MaxNameLen        = 64
	MaxHandlerLen     = 128
	MaxDescriptionLen = 256
	MaxEnvBytes       = 4096

	// MaxZipBytes is the direct-upload limit for a zipped package.
	MaxZipBytes = 50 * 1024 * 1024
	// MaxUnzippedBytes bounds the extracted package.
	MaxUnzippedBytes = 262144000
	// MaxSyncPayload is Lambda's request limit for synchronous invokes.
	MaxSyncPayload = 6 * 1024 * 1024
	// MaxResponsePayload is the buffered response limit (100 bytes over 6 MiB, as Lambda).
	MaxResponsePayload = MaxSyncPayload + 100
	// InitTimeout bounds the init phase of an instance.
	InitTimeout = 10 * time.Second

	Latest = "$LATEST"
	// AccountID is the one account of a Stratus installation.
	AccountID = "000000000000"

	// TagIdleTimeout overrides the server's idle timeout for one function.
	TagIdleTimeout = "stratus:idle-timeout"
)

// ErrInvalid marks a configuration the caller must fix. Errors wrapping it
// become InvalidParameterValueException on the wire.
var ErrInvalid = errors.New("invalid parameter")

// ErrTooLarge marks a package or payload over Lambda's size limits.
var ErrTooLarge = errors.New("too large")

// Invalidf is an ErrInvalid with a message for the caller.
func Invalidf(format string, args ...any) error { return invalidf(format, args...) }

func invalidf(format string, args ...any) error {
	return Errorf(ErrInvalid, "%s", fmt.Sprintf(format, args...))
}

// Config is everything a user configures on a function, as stored.
type Config struct {
	Name             string            `json:"name"`
	Runtime          string            `json:"runtime"`
	Handler          string            `json:"handler"`
	Role             string            `json:"role"`
	Description      string            `json:"description,omitempty"`
	Timeout          int               `json:"timeout"`
	MemorySize       int               `json:"memorySize"`
	EphemeralStorage int               `json:"ephemeralStorage"`
	Environment      map[string]string `json:"environment,omitempty"`
	Architecture     string            `json:"architecture"`
	Tags             map[string]string `json:"tags,omitempty"`
	// DeadLetterTarget receives events whose asynchronous invocation
	// failed (an SQS queue ARN or a function ARN).
	DeadLetterTarget string `json:"deadLetterTarget,omitempty"`
	// Layers are extracted in order under /opt in every instance.
	Layers []LayerRef `json:"layers,omitempty"`
	// Logging is the LoggingConfig; nil is Lambda's default (Text).
	Logging *LoggingConfig `json:"logging,omitempty"`
	// CapacityProvider, when set, makes the function's execution
	// environments take several invocations at once (see PerEnvironment).
	CapacityProvider *CapacityProvider `json:"capacityProvider,omitempty"`
}

// Function is a stored function: configuration plus code identity and
// bookkeeping that Lambda reports back.
type Function struct {
	Config
	CodeSha256   string    `json:"codeSha256"` // base64 of the SHA-256 of the zip, as AWS reports it
	CodeSize     int64     `json:"codeSize"`
	RevisionID   string    `json:"revisionId"`
	LastModified time.Time `json:"lastModified"`
	// Version is empty for $LATEST and the number of a published version.
	Version string `json:"version,omitempty"`
	// LastVersion (on $LATEST) is the highest version number published.
	LastVersion int `json:"lastVersion,omitempty"`
}

// CodeKey is the storage key of the function's zip: the hex SHA-256.
func (f *Function) CodeKey() string { return ShaKey(f.CodeSha256) }

// IdleTimeout returns the per-function idle timeout, or fallback.
func (f *Function) IdleTimeout(fallback time.Duration) time.Duration {
	if v, ok := f.Tags[TagIdleTimeout]; ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	return fallback
}

// ApplyDefaults fills the fields Lambda defaults.
func (c *Config) ApplyDefaults() {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MemorySize == 0 {
		c.MemorySize = DefaultMemory
	}
	if c.EphemeralStorage == 0 {
		c.EphemeralStorage = DefaultEphemeral
	}
	if c.Architecture == "" {
		c.Architecture = "x86_64"
	}
	if c.Role == "" {
		c.Role = "arn:aws:iam::" + AccountID + ":role/stratus-function"
	}
	if c.Handler == "" && IsProvided(c.Runtime) {
		c.Handler = "bootstrap"
	}
	// Multi-concurrency environments log in JSON, each line with its
	// request id: lines of concurrent invocations interleave.
	if c.MultiConcurrency() && c.Logging == nil {
		c.Logging = &LoggingConfig{LogFormat: "JSON"}
	}
}

var (
	nameRE      = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	envKeyRE    = regexp.MustCompile(`^[a-zA-Z]([a-zA-Z0-9_])+$`)
	reservedEnv = map[string]bool{
		"_HANDLER": true, "_X_AMZN_TRACE_ID": true, "AWS_DEFAULT_REGION": true, "AWS_REGION": true,
		"AWS_EXECUTION_ENV": true, "AWS_LAMBDA_FUNCTION_NAME": true, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": true,
		"AWS_LAMBDA_FUNCTION_VERSION": true, "AWS_LAMBDA_INITIALIZATION_TYPE": true,
		"AWS_LAMBDA_LOG_GROUP_NAME": true, "AWS_LAMBDA_LOG_STREAM_NAME": true, "AWS_ACCESS_KEY": true,
		"AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true,
		"AWS_LAMBDA_RUNTIME_API": true, "LAMBDA_TASK_ROOT": true, "LAMBDA_RUNTIME_DIR": true,
	}
)

// ValidateName checks a bare function name.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen || !nameRE.MatchString(name) {
		return invalidf("Value '%s' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+ and have length between 1 and %d", name, MaxNameLen)
	}
	return nil
}

// Validate checks a configuration after defaults were applied.
func (c *Config) Validate() error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	if !Supported(c.Runtime) {
		return invalidf("The runtime parameter of %s is not supported by Stratus. Supported runtimes: %s", orEmpty(c.Runtime), strings.Join(SupportedRuntimes(), ", "))
	}
	if c.Handler == "" || len(c.Handler) > MaxHandlerLen || strings.ContainsAny(c.Handler, " \t\r\n") {
		return invalidf("Value '%s' at 'handler' failed to satisfy constraint: Member must have length less than or equal to %d and match pattern [^\\s]+", c.Handler, MaxHandlerLen)
	}
	if t := c.DeadLetterTarget; t != "" && !ValidTarget(t) {
		return invalidf("Value '%s' at 'deadLetterConfig.targetArn' failed to satisfy constraint: Stratus accepts an SQS queue or Lambda function ARN", t)
	}
	if _, _, err := splitHandler(c.Runtime, c.Handler); err != nil {
		return err
	}
	if c.Timeout < 1 || c.Timeout > MaxTimeout {
		return invalidf("Value '%d' at 'timeout' failed to satisfy constraint: Member must have value between 1 and %d", c.Timeout, MaxTimeout)
	}
	if c.MemorySize < MinMemory || c.MemorySize > MaxMemory {
		return invalidf("Value '%d' at 'memorySize' failed to satisfy constraint: Member must have value between %d and %d", c.MemorySize, MinMemory, MaxMemory)
	}
	if c.EphemeralStorage < MinEphemeral || c.EphemeralStorage > MaxEphemeral {
		return invalidf("Value '%d' at 'ephemeralStorage.size' failed to satisfy constraint: Member must have value between %d and %d", c.EphemeralStorage, MinEphemeral, MaxEphemeral)
	}
	if len(c.Description) > MaxDescriptionLen {
		return invalidf("Value at 'description' failed to satisfy constraint: Member must have length less than or equal to %d", MaxDescriptionLen)
	}
	if c.Architecture != "x86_64" && c.Architecture != "arm64" {
		return invalidf("Value '%s' at 'architectures' failed to satisfy constraint: Member must be x86_64 or arm64", c.Architecture)
	}
	if v, ok := c.Tags[TagIdleTimeout]; ok {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			return invalidf("Tag %s must be a positive duration such as 5m, got %q", TagIdleTimeout, v)
		}
	}
	if err := c.Logging.validate(); err != nil {
		return err
	}
	if err := c.CapacityProvider.validate(); err != nil {
		return err
	}
	if err := validateConcurrencyTag(c.Tags); err != nil {
		return err
	}
	if c.MultiConcurrency() && c.Logging != nil && !c.Logging.JSON() {
		return invalidf("A function with multi-concurrency execution environments logs in the JSON format (each line carries its request id): LoggingConfig.LogFormat Text is not supported with it")
	}
	return validateEnv(c.Environment)
}

func validateEnv(env map[string]string) error {
	size := 0
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !envKeyRE.MatchString(k) {
			return invalidf("Environment variable name %q must match [a-zA-Z]([a-zA-Z0-9_])+", k)
		}
		if reservedEnv[k] {
			return invalidf("Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: %s", k)
		}
		if strings.IndexByte(env[k], 0) >= 0 {
			return invalidf("Environment variable %s contains a NUL character, which no process environment can hold", k)
		}
		size += len(k) + len(env[k])
	}
	if size > MaxEnvBytes {
		return invalidf("Lambda was unable to configure your environment variables because the environment variables you have provided exceeded the 4KB limit. String measured: %d bytes", size)
	}
	return nil
}

func orEmpty(s string) string {
	if s == "" {
		return "(empty)"
	}
	return s
}

// ARN builds a function ARN, with an optional qualifier.
func ARN(region, name, qualifier string) string {
	arn := "arn:aws:lambda:" + region + ":" + AccountID + ":function:" + name
	if qualifier != "" {
		arn += ":" + qualifier
	}
	return arn
}

var refRE = regexp.MustCompile(`^(?:arn:aws[a-zA-Z-]*:lambda:([a-z]{2}(?:-gov)?-[a-z]+-\d):)?(?:(\d{12}):)?(?:function:)?([a-zA-Z0-9_-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?$`)

// ParseRef splits what clients pass as FunctionName (a name, name:qualifier,
// a partial ARN or a full ARN) into a name and a qualifier.
func ParseRef(ref string) (name, qualifier string, err error) {
	m := refRE.FindStringSubmatch(ref)
	if m == nil || len(m[3]) > MaxNameLen {
		return "", "", invalidf("Value '%s' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?", ref)
	}
	if m[2] != "" && m[2] != AccountID {
		return "", "", invalidf("account %s does not exist here; Stratus uses account %s", m[2], AccountID)
	}
	return m[3], m[4], nil
}
