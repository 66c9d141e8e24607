// Package cli implements the stratus subcommands. Everything but `server`
// talks to a running server through its public APIs, as any client would.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/stratus-faas/stratus/internal/config"
	"github.com/stratus-faas/stratus/internal/server"
)

type command struct {
	name    string
	summary string
	usage   string
	run     func(ctx context.Context, env *Env, args []string) error
}

var commands []command

func init() {
	commands = []command{
		{"server", "run a Stratus node", "stratus server [flags]", runServer},
		{"deploy", "create or update a function from a folder or a .zip", "stratus deploy NAME PATH [flags]", runDeploy},
		{"invoke", "invoke a function and print its response", "stratus invoke NAME [PAYLOAD | -] [flags]", runInvoke},
		{"ls", "list functions", "stratus ls [flags]", runList},
		{"rm", "delete functions", "stratus rm NAME... [flags]", runRemove},
		{"logs", "print a function's logs", "stratus logs NAME [-f] [--since 1h] [flags]", runLogs},
		{"usage", "print requests, compute and cost per function", "stratus usage [--since 720h] [--json] [flags]", runUsage},
		{"queues", "print queues and asynchronous events: depth, in flight, age, retries, dead letters", "stratus queues [--json] [flags]", runQueues},
		{"buckets", "print S3 buckets: objects, bytes, uploads in progress, notifications", "stratus buckets [--json] [flags]", runBuckets},
		{"nodes", "print the cluster's nodes and their load, and the store's copies of each stream", "stratus nodes [--json] [flags]", runNodes},
		{"dashboard", "print the address of the live dashboard, signed in with your key", "stratus dashboard [flags]", runDashboard},
	}
}

// Env is where a command reads and writes; tests substitute their own.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// Main runs the CLI with os.Args and returns the exit code.
func Main() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}, os.Args[1:])
}

// Run runs one subcommand.
func Run(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.Stdout)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(env.Stdout, config.Version())
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(ctx, env, args[1:])
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil {
				fmt.Fprintf(env.Stderr, "stratus %s: %s\n", c.name, explain(err))
				var ue usageError
				if errors.As(err, &ue) {
					return 2
				}
				return 1
			}
			return 0
		}
	}
	fmt.Fprintf(env.Stderr, "stratus: unknown command %q\n\n", args[0])
	usage(env.Stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Stratus runs AWS Lambda functions on your own machines.

Usage:
  stratus <command> [arguments] [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n", "version", "print the version of this binary")
	fmt.Fprint(w, `
Run "stratus <command> --help" for a command's flags. Client commands reach
the server at --endpoint (default $STRATUS_ENDPOINT or http://127.0.0.1:9000).
`)
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// parse parses flags anywhere among the arguments and returns the
// positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlags(env *Env, name, use string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: %s\n\nFlags:\n", use)
		fs.PrintDefaults()
	}
	return fs
}

func usageOf(name string) string {
	for _, c := range commands {
		if c.name == name {
			return c.usage
		}
	}
	return name
}

func runServer(ctx context.Context, env *Env, args []string) error {
	cfg := config.Defaults()
	fs := newFlags(env, "server", usageOf("server"))
	cfg.Flags(fs)
	verbose := fs.Bool("verbose", false, "log debug messages")
	format := fs.String("log-format", "text", "format of the server's own log: text (key=value) or json (one JSON object a line, for log shippers)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments: %s", strings.Join(pos, " "))
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch *format {
	case "text":
		h = slog.NewTextHandler(env.Stderr, opts)
	case "json":
		h = slog.NewJSONHandler(env.Stderr, opts)
	default:
		return usagef("--log-format must be text or json, not %q", *format)
	}
	return server.Run(ctx, cfg, slog.New(h))
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
