// Package config holds the server's typed configuration: defaults,
// validation and the flags that set it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Server configures `stratus server`.
type Server struct {
	Listen         string
	HTTPListen     string
	DataDir        string
	IdleTimeout    time.Duration
	Region         string
	NATSURL        string
	MaxConcurrency int
	ScaleRate      int // new instances per function per 10 seconds
	// Prewarm is how many sandboxes with a Node.js or Python interpreter
	// already running each runtime keeps ready for cold starts (0: none).
	Prewarm         int
	DrainTimeout    time.Duration
	Pprof           bool
	Unsandboxed     bool
	AsyncRetryDelay time.Duration
	// DevAuth takes every request on a loopback --listen as the root's,
	// signed or not: for development on one machine only.
	DevAuth bool
	// MetricsListen, when set, serves /metrics (and /debug/pprof with
	// --pprof) without credentials on a listener of its own, for a
	// Prometheus that cannot sign requests.
	MetricsListen string
	// TLSCert and TLSKey serve both listeners over TLS (1.2 and up);
	// SIGHUP reloads them.
	TLSCert, TLSKey string
	// AllowPlainHTTP lets a non-loopback listener serve without TLS.
	AllowPlainHTTP bool
	// StoreKeyFile holds the key that encrypts the embedded store at rest.
	StoreKeyFile string
	// RatePerCaller limits each caller's requests per second on the API
	// listener (0: no limit).
	RatePerCaller float64
	// HostNetwork names functions whose instances share the host's
	// network instead of getting their own.
	HostNetwork []string
	// RuntimeMap runs a runtime on another's interpreter (or the
	// executable at a path), where the host lacks its own.
	RuntimeMap map[string]string
	// NodeSDK is the folder holding the AWS SDK for JavaScript v3
	// (node_modules/@aws-sdk/...) that Node.js functions get; empty:
	// DATA/sdk/nodejs.
	NodeSDK string
	// Node names this node in a cluster (default: the host name).
	Node string
	// ClusterName, ClusterListen and ClusterPeers join the embedded NATS
	// server to the other nodes' (empty: a node of its own).
	ClusterName   string
	ClusterListen string
	ClusterPeers  []string
	// ClusterSecretFile holds the secret the nodes' routes log in with.
	ClusterSecretFile string
	// ClusterTLSCert, ClusterTLSKey and ClusterTLSCA put the routes on
	// mutual TLS.
	ClusterTLSCert, ClusterTLSKey, ClusterTLSCA string
	// Replicas of every stream and bucket (0: 3 with at least 3 NATS
	// servers, else 1).
	Replicas int
}

// Clustered reports whether the embedded NATS server joins others.
func (c *Server) Clustered() bool { return c.ClusterListen != "" || len(c.ClusterPeers) > 0 }

// Defaults returns the embedded defaults.
func Defaults() Server {
	return Server{
		Listen:          "127.0.0.1:9000",
		HTTPListen:      "127.0.0.1:8080",
		DataDir:         DefaultDataDir(),
		IdleTimeout:     15 * time.Minute,
		Region:          "us-east-1",
		MaxConcurrency:  1000,
		ScaleRate:       1000,
		Prewarm:         1,
		DrainTimeout:    30 * time.Second,
		AsyncRetryDelay: time.Minute,
		Node:            hostname(),
	}
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "stratus"
	}
	return h
}

// DefaultDataDir is $STRATUS_DATA_DIR, else under the user's data folder,
// never under /tmp: $XDG_DATA_HOME/stratus, else ~/.local/share/stratus.
func DefaultDataDir() string {
	if d := os.Getenv("STRATUS_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "stratus")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "stratus")
	}
	return "stratus-data"
}

// Flags binds the fields to fs.
func (c *Server) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "address of the AWS-compatible API, /healthz and /metrics")
	fs.StringVar(&c.HTTPListen, "http-listen", c.HTTPListen, "address of the HTTP trigger listener (function URLs, HTTP APIs)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "folder for all durable state")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "how long an idle instance stays warm (per function: tag "+"stratus:idle-timeout)")
	fs.StringVar(&c.Region, "region", c.Region, "AWS region this server answers as")
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "external NATS server or cluster; empty runs an embedded one")
	fs.IntVar(&c.MaxConcurrency, "max-concurrency", c.MaxConcurrency, "account-wide limit of concurrent invocations")
	fs.IntVar(&c.ScaleRate, "scale-rate", c.ScaleRate, "new instances each function may start per 10 seconds, as Lambda's scaling rate")
	fs.IntVar(&c.Prewarm, "prewarm", c.Prewarm, "sandboxes with the interpreter and runtime client already running that each Node.js and Python runtime in use keeps ready for cold starts (0: none)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long shutdown waits for in-flight invocations")
	fs.DurationVar(&c.AsyncRetryDelay, "async-retry-delay", c.AsyncRetryDelay, "wait before the first retry of a failed asynchronous invocation (the second waits twice as long)")
	fs.BoolVar(&c.Unsandboxed, "unsandboxed", c.Unsandboxed, "run instances as plain child processes even where they could be isolated")
	fs.BoolVar(&c.DevAuth, "dev-auth", c.DevAuth, "DEVELOPMENT ONLY: accept any request, signed or not, as the root (refused unless --listen is a loopback address)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "serve /metrics (and /debug/pprof with --pprof) without credentials on this address too")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate (chain) for both listeners; reloaded on SIGHUP")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key of --tls-cert")
	fs.BoolVar(&c.AllowPlainHTTP, "allow-plain-http", c.AllowPlainHTTP, "serve plain HTTP on a non-loopback --listen or --http-listen (credentials and payloads then cross the network unencrypted)")
	fs.StringVar(&c.StoreKeyFile, "store-key-file", c.StoreKeyFile, "file holding the key that encrypts the embedded store at rest (keep it off the data folder's disk; the same key at every start)")
	fs.Float64Var(&c.RatePerCaller, "rate-per-caller", c.RatePerCaller, "requests per second each caller (access key; a function's instances together) may make on the API listener, with bursts of twice that; 0 for no limit")
	fs.Func("host-network", "comma-separated names of functions whose instances share the host's network (every listener on the host is then theirs to reach) instead of each getting a network of its own", func(v string) error {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if !functionNameRE.MatchString(name) {
					return fmt.Errorf("%q is not a function name", name)
				}
				c.HostNetwork = append(c.HostNetwork, name)
			}
		}
		return nil
	})
	fs.Func("runtime-map", "comma-separated RUNTIME=RUNTIME or RUNTIME=/path/to/interpreter: run functions of a runtime whose interpreter this host lacks on another (python3.13=python3.11) or on the named executable; the function then runs on that version", func(v string) error {
		for _, kv := range strings.Split(v, ",") {
			if kv = strings.TrimSpace(kv); kv == "" {
				continue
			}
			rt, target, ok := strings.Cut(kv, "=")
			if !ok || rt == "" || target == "" {
				return fmt.Errorf("%q is not RUNTIME=RUNTIME or RUNTIME=/path", kv)
			}
			if c.RuntimeMap == nil {
				c.RuntimeMap = map[string]string{}
			}
			c.RuntimeMap[rt] = target
		}
		return nil
	})
	fs.StringVar(&c.NodeSDK, "node-sdk", c.NodeSDK, "folder the AWS SDK for JavaScript v3 is installed in (npm install --prefix DIR @aws-sdk/client-...), which Node.js functions get below their own modules as on Lambda; default DATA/sdk/nodejs")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go profiles under /debug/pprof/ on the API listener")
	fs.StringVar(&c.Node, "node-name", c.Node, "this node's name, unique in a cluster")
	fs.StringVar(&c.ClusterName, "cluster-name", c.ClusterName, "name of the cluster the embedded NATS servers of the nodes form (the same on every node)")
	fs.StringVar(&c.ClusterListen, "cluster-listen", c.ClusterListen, "host:port of this node's NATS route listener, which the other nodes connect to")
	fs.Func("cluster-peers", "comma-separated host:port of the other nodes' --cluster-listen (this node's own may be among them)", func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.ClusterPeers = append(c.ClusterPeers, p)
			}
		}
		return nil
	})
	fs.StringVar(&c.ClusterSecretFile, "cluster-secret-file", c.ClusterSecretFile, "file holding the secret (16 characters or more) every node of the cluster shares to authenticate its routes")
	fs.StringVar(&c.ClusterTLSCert, "cluster-tls-cert", c.ClusterTLSCert, "PEM certificate this node's routes present (mutual TLS)")
	fs.StringVar(&c.ClusterTLSKey, "cluster-tls-key", c.ClusterTLSKey, "PEM private key of --cluster-tls-cert")
	fs.StringVar(&c.ClusterTLSCA, "cluster-tls-ca", c.ClusterTLSCA, "PEM certificate authority that signed every node's --cluster-tls-cert")
	fs.IntVar(&c.Replicas, "replicas", c.Replicas, "copies JetStream keeps of every stream and bucket (0: 3 when the cluster has at least 3 NATS servers, else 1)")
}

// Loopback reports whether addr's host is a loopback address (or
// localhost).
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var functionNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

var regionRE = regexp.MustCompile(`^[a-z]{2}(-gov)?-[a-z]+-\d$`)

// Validate checks the configuration.
func (c *Server) Validate() error {
	var errs []error
	for name, addr := range map[string]string{"--listen": c.Listen, "--http-listen": c.HTTPListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, addr, err))
		}
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen %q: %w", c.MetricsListen, err))
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.TLSCert == "" && !c.AllowPlainHTTP {
		for name, addr := range map[string]string{"--listen": c.Listen, "--http-listen": c.HTTPListen} {
			if _, _, err := net.SplitHostPort(addr); err == nil && !Loopback(addr) {
				errs = append(errs, fmt.Errorf("%s %s is not a loopback address: serve it with --tls-cert and --tls-key, or pass --allow-plain-http to say plain HTTP is intended", name, addr))
			}
		}
	}
	if c.DevAuth && !Loopback(c.Listen) {
		errs = append(errs, fmt.Errorf("--dev-auth takes every request as the root's: it is refused on --listen %s, which is not a loopback address", c.Listen))
	}
	if c.RatePerCaller < 0 {
		errs = append(errs, errors.New("--rate-per-caller must not be negative"))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	if c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("--idle-timeout must be positive"))
	}
	if !regionRE.MatchString(c.Region) {
		errs = append(errs, fmt.Errorf("--region %q is not a region name such as us-east-1", c.Region))
	}
	if c.AsyncRetryDelay <= 0 {
		errs = append(errs, errors.New("--async-retry-delay must be positive"))
	}
	if c.ScaleRate < 1 {
		errs = append(errs, errors.New("--scale-rate must be at least 1"))
	}
	if c.MaxConcurrency < 1 {
		errs = append(errs, errors.New("--max-concurrency must be at least 1"))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, errors.New("--drain-timeout must not be negative"))
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		errs = append(errs, errors.New("--replicas must be 0 (chosen) to 5, JetStream's most"))
	}
	if c.Clustered() {
		switch {
		case c.NATSURL != "":
			errs = append(errs, errors.New("--cluster-* forms a cluster of the embedded NATS servers: leave --nats-url empty, or point every node at the external cluster instead"))
		case c.ClusterListen == "" || c.ClusterName == "" || c.ClusterSecretFile == "":
			errs = append(errs, errors.New("a cluster needs --cluster-name, --cluster-listen, --cluster-secret-file and --cluster-peers"))
		case c.ClusterTLSCert == "" && !c.AllowPlainHTTP && !Loopback(c.ClusterListen):
			errs = append(errs, fmt.Errorf("--cluster-listen %s is not a loopback address: put the routes on TLS (--cluster-tls-cert, --cluster-tls-key, --cluster-tls-ca), or pass --allow-plain-http to say plain connections are intended", c.ClusterListen))
		}
	}
	return errors.Join(errs...)
}
