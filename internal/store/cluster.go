package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster joins the embedded NATS server to those of other Stratus nodes,
// over NATS routes: the nodes then share one JetStream with replicated
// streams, and nothing else needs installing.
type Cluster struct {
	Name   string   // the cluster's name, the same on every node
	Node   string   // this server's name, unique in the cluster
	Listen string   // host:port the routes of the other nodes connect to
	Peers  []string // host:port of the other nodes' route listeners (its own may be among them)
	// Secret authenticates routes: a node presents it and accepts only
	// routes that present it.
	Secret string
	// CertFile, KeyFile and CAFile, when set, put the routes on mutual
	// TLS: each side shows a certificate that CAFile signed.
	CertFile, KeyFile, CAFile string

	clientSecret string // of the loopback client listener; set by apply
}

// routeUser is the name the nodes' routes log in with.
const routeUser = "stratus"

// size is how many servers the cluster is configured with.
func (c *Cluster) size() int {
	n := 1
	for _, p := range c.Peers {
		if p != c.Listen {
			n++
		}
	}
	return n
}

// Validate checks the settings before anything starts.
func (c *Cluster) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("--cluster-name must be set to form a cluster"))
	}
	if c.Node == "" {
		errs = append(errs, errors.New("--node-name must be set to form a cluster"))
	}
	if _, _, err := splitPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--cluster-listen %q: %w", c.Listen, err))
	}
	for _, p := range c.Peers {
		if _, _, err := splitPort(p); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-peers %q: %w", p, err))
		}
	}
	if len(c.Secret) < 16 {
		errs = append(errs, errors.New("the cluster secret (--cluster-secret-file) must hold at least 16 characters"))
	}
	if (c.CertFile == "") != (c.KeyFile == "") || (c.CertFile != "" && c.CAFile == "") {
		errs = append(errs, errors.New("--cluster-tls-cert, --cluster-tls-key and --cluster-tls-ca go together"))
	}
	return errors.Join(errs...)
}

func splitPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, fmt.Errorf("port %q is not a port number", port)
	}
	return host, n, nil
}

// apply sets the embedded server's cluster options.
func (c *Cluster) apply(o *server.Options) error {
	if err := c.Validate(); err != nil {
		return err
	}
	c.clientSecret = rand.Text()
	host, port, _ := splitPort(c.Listen)
	o.ServerName = c.Node
	// The server starts its routes only once its client listener is up:
	// one on loopback, on a port of its own, open to this process alone
	// (a password made at each start).
	o.DontListen = false
	o.Host, o.Port = "127.0.0.1", server.RANDOM_PORT
	o.Username, o.Password = routeUser, c.clientSecret
	o.Cluster = server.ClusterOpts{
		Name:     c.Name,
		Host:     host,
		Port:     port,
		Username: routeUser,
		Password: c.Secret,
		// Routes only: clients of the cluster are its Stratus nodes, each
		// in-process with its own server.
		NoAdvertise: true,
		// A lost peer is noticed within seconds, so its streams' leaders
		// move to the survivors soon after.
		PingInterval: 2 * time.Second,
		MaxPingsOut:  2,
	}
	if c.CertFile != "" {
		cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.CertFile, KeyFile: c.KeyFile, CaFile: c.CAFile, Verify: true})
		if err != nil {
			return fmt.Errorf("cluster TLS: %w", err)
		}
		// Routes dial as well as accept: the same authority vouches for
		// the servers this node connects to.
		cfg.RootCAs = cfg.ClientCAs
		o.Cluster.TLSConfig = cfg
		o.Cluster.TLSTimeout = 5
	}
	for _, p := range c.Peers {
		if p == c.Listen {
			continue
		}
		o.Routes = append(o.Routes, &url.URL{Scheme: "nats-route", User: url.UserPassword(routeUser, c.Secret), Host: p})
	}
	return nil
}

// StreamHealth is the replication state of one stream or bucket.
type StreamHealth struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	Leader   string `json:"leader,omitempty"`
	// Current counts the copies up to date, the leader's included.
	Current int      `json:"current"`
	Lagging []string `json:"lagging,omitempty"` // servers behind the leader
	Offline []string `json:"offline,omitempty"` // servers not answering
}

// Replication reports every stream's and bucket's copies.
func (s *Store) Replication(ctx context.Context) ([]StreamHealth, error) {
	var out []StreamHealth
	l := s.JS.ListStreams(ctx)
	for info := range l.Info() {
		h := StreamHealth{Name: info.Config.Name, Replicas: max(info.Config.Replicas, 1), Current: 1}
		if c := info.Cluster; c != nil {
			h.Leader = c.Leader
			if c.Leader == "" {
				h.Current = 0
			}
			for _, p := range c.Replicas {
				switch {
				case p.Offline:
					h.Offline = append(h.Offline, p.Name)
				case p.Current:
					h.Current++
				default:
					h.Lagging = append(h.Lagging, p.Name)
				}
			}
		}
		out = append(out, h)
	}
	if err := l.Err(); err != nil {
		return out, fmt.Errorf("list streams: %w", err)
	}
	slices.SortFunc(out, func(a, b StreamHealth) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// catchUp waits, for a while, until this server's copy of every stream
// is current: a node back from an outage then serves what the cluster
// wrote meanwhile, not its old state (watches may read the local copy).
func (s *Store) catchUp(ctx context.Context, self string, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	for {
		behind, err := s.behind(ctx, self)
		if err == nil && len(behind) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			if log != nil {
				log.Warn("serving before this node's copies of the store caught up", "behind", behind, "err", err)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// catchUpTimeout bounds how long a node waits for its copies at start.
const catchUpTimeout = 60 * time.Second

// behind names the streams of which server self holds a copy that is
// not current.
func (s *Store) behind(ctx context.Context, self string) ([]string, error) {
	var out []string
	l := s.JS.ListStreams(ctx)
	for info := range l.Info() {
		c := info.Cluster
		if c == nil || c.Leader == self {
			continue
		}
		ok := c.Leader != ""
		for _, p := range c.Replicas {
			if p.Name == self && (!p.Current || p.Offline) {
				ok = false
			}
		}
		if !ok {
			out = append(out, info.Config.Name)
		}
	}
	return out, l.Err()
}
