// Package server is the composition root: it builds every part from the
// configuration, starts them in order, and stops them in reverse.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	s3api "github.com/stratus-faas/stratus/internal/api/s3"
	"github.com/stratus-faas/stratus/internal/objects"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratus-faas/stratus/internal/alerts"
	"github.com/stratus-faas/stratus/internal/api/apigateway"
	"github.com/stratus-faas/stratus/internal/api/cloudwatchlogs"
	iamapi "github.com/stratus-faas/stratus/internal/api/iam"
	lambdaapi "github.com/stratus-faas/stratus/internal/api/lambda"
	schedulerapi "github.com/stratus-faas/stratus/internal/api/scheduler"
	sqsapi "github.com/stratus-faas/stratus/internal/api/sqs"
	"github.com/stratus-faas/stratus/internal/api/stratusapi"
	"github.com/stratus-faas/stratus/internal/auth"
	"github.com/stratus-faas/stratus/internal/cluster"
	"github.com/stratus-faas/stratus/internal/config"
	"github.com/stratus-faas/stratus/internal/dashboard"
	"github.com/stratus-faas/stratus/internal/esm"
	"github.com/stratus-faas/stratus/internal/events"
	"github.com/stratus-faas/stratus/internal/function"
	"github.com/stratus-faas/stratus/internal/gateway"
	"github.com/stratus-faas/stratus/internal/httpapi"
	"github.com/stratus-faas/stratus/internal/invoke"
	"github.com/stratus-faas/stratus/internal/logs"
	"github.com/stratus-faas/stratus/internal/meter"
	"github.com/stratus-faas/stratus/internal/pool"
	"github.com/stratus-faas/stratus/internal/queue"
	"github.com/stratus-faas/stratus/internal/registry"
	"github.com/stratus-faas/stratus/internal/runtimes"
	"github.com/stratus-faas/stratus/internal/sandbox"
	"github.com/stratus-faas/stratus/internal/schedule"
	"github.com/stratus-faas/stratus/internal/store"
)

// instanceCredentials is how long an instance's role credentials last;
// an instance is replaced an hour before they expire.
const instanceCredentials = 12 * time.Hour

// Run serves until ctx is cancelled, then shuts down in order.
func Run(ctx context.Context, cfg config.Server, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	// Bind first, so a port in use fails fast and before any state opens.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	scheme := "http://"
	var cert *certificate
	if cfg.TLSCert != "" {
		if cert, err = loadCertificate(cfg.TLSCert, cfg.TLSKey, log); err != nil {
			return err
		}
		scheme = "https://"
	}
	endpoint := scheme + ln.Addr().String()
	httpLn, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPListen, err)
	}
	defer httpLn.Close()
	gatewayURL := scheme + httpLn.Addr().String()

	openCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	key, err := storeKey(cfg, log)
	if err != nil {
		return err
	}
	routes, err := clusterOptions(cfg)
	if err != nil {
		return err
	}
	if routes != nil {
		// Peers may take a while to come up: wait for them longer.
		cancel()
		openCtx, cancel = context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
	}
	st, err := store.Open(openCtx, store.Options{DataDir: cfg.DataDir, URL: cfg.NATSURL, Logger: log, EncryptionKey: key, Cluster: routes, Replicas: cfg.Replicas})
	if err != nil {
		return err
	}
	defer st.Close()

	ids, err := auth.Open(openCtx, st.IAM, auth.Options{Log: log})
	if err != nil {
		return err
	}
	defer ids.Close()
	if err := ids.EnsureDefaultRole(openCtx); err != nil {
		return fmt.Errorf("create the default execution role: %w", err)
	}
	if err := writeProfile(cfg.DataDir, endpoint, cfg.Region, ids.Root(), log); err != nil {
		return err
	}
	if cfg.DevAuth {
		log.Warn("DEVELOPMENT MODE (--dev-auth): every request on " + cfg.Listen + " is taken as the root's, signed or not; never use it where others can reach the listener")
	}

	reg, err := registry.Open(openCtx, st, filepath.Join(cfg.DataDir, "code"), log, nil)
	if err != nil {
		return err
	}
	defer reg.Close()

	apis, err := httpapi.Open(openCtx, st.APIs, log)
	if err != nil {
		return err
	}
	defer apis.Close()

	nodeSDK := cfg.NodeSDK
	if nodeSDK == "" {
		nodeSDK = filepath.Join(cfg.DataDir, "sdk", "nodejs")
	}
	rts, err := runtimes.Install(filepath.Join(cfg.DataDir, "runtimes"), runtimes.Options{Map: cfg.RuntimeMap, NodeSDK: nodeSDK})
	if err != nil {
		return err
	}
	apiAddr, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	inAPI := &instanceAPI{}
	defer inAPI.stop()
	launcher, err := sandbox.New(filepath.Join(cfg.DataDir, "instances"), sandbox.Options{
		Expose: rts.HostPaths(), Unsandboxed: cfg.Unsandboxed, API: apiAddr, ServeAPI: inAPI.serve,
	})
	if err != nil {
		return err
	}
	defer launcher.Close() // after every pool is closed: deferred first
	if n := sandbox.MaxInstancesByFiles(); n < cfg.MaxConcurrency {
		log.Warn("the open-file limit leaves room for fewer instances than --max-concurrency: raise it (ulimit -n, or LimitNOFILE= for a systemd unit)",
			"instances", n, "max_concurrency", cfg.MaxConcurrency, "files_per_instance", sandbox.FilesPerInstance)
	}
	if ok, why := launcher.Isolated(); !ok {
		log.Warn("instances run UNSANDBOXED: no namespaces, cgroups or separate users; do not run untrusted code", "reason", why)
	} else if ok, why := launcher.NetworkIsolated(); !ok {
		log.Warn("instances run sandboxed but SHARE THE HOST'S NETWORK: every listener on the host is theirs to reach", "reason", why)
	} else {
		log.Info("instances run sandboxed: namespaces (network too), cgroups, a uid per instance")
	}
	hostNet := map[string]bool{}
	for _, name := range cfg.HostNetwork {
		hostNet[name] = true
	}
	logRuntimes(log, rts, nodeSDK)

	sink := logs.NewSink(st.JS, log)
	defer sink.Close()
	usage := meter.NewWriter(st.JS, log)
	defer usage.Close()

	deps := &pool.Deps{
		Launcher:        pool.Sandbox(launcher),
		Runtimes:        rts,
		Logs:            sink,
		Region:          cfg.Region,
		APIEndpoint:     instanceEndpoint(scheme, apiAddr),
		HostNetwork:     func(name string) bool { return hostNet[name] },
		Clock:           pool.RealClock,
		Log:             log,
		Bill:            invoke.BillProvisioned(usage, pool.RealClock),
		BillEnvironment: invoke.BillEnvironment(usage, pool.RealClock),
		Credentials: func(fn *function.Function) (pool.RoleCredentials, bool) {
			c, ok := ids.InstanceCredentials(fn.Role, fn.Name, instanceCredentials)
			return pool.RoleCredentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken, Expiration: c.Expiration}, ok
		},
	}
	if isolated, _ := launcher.NetworkIsolated(); isolated && cfg.Prewarm > 0 {
		deps.Warm = pool.NewWarm(deps, cfg.Prewarm)
		defer deps.Warm.Close() // before the launcher's
	}
	// In a cluster the nodes know each other through the store; joined
	// once the pools and the invoker exist (members reads their load).
	var members *cluster.Members
	setOpts := pool.SetOptions{IdleTimeout: cfg.IdleTimeout, ScaleRate: cfg.ScaleRate}
	if st.Clustered() {
		setOpts.Share = func(n int) int { return members.Share(n) }
	}
	pools := pool.NewSet(reg, deps, setOpts)
	defer pools.Close()
	reg.OnChange(pools.Changed)
	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if w := deps.Warm; w != nil {
		promReg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "stratus_prewarmed_sandboxes", Help: "Sandboxes with an interpreter and runtime client running, ready for cold starts."}, func() float64 {
				n := 0
				for _, k := range w.Ready() {
					n += k
				}
				return float64(n)
			}),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "stratus_prewarmed_sandboxes_used_total", Help: "Cold starts that took a pre-started sandbox."}, func() float64 { return float64(w.Used.Load()) }))
	}
	var inv *invoke.Invoker
	metrics := invoke.NewMetrics(promReg,
		func() float64 { return float64(deps.Live.Load()) },
		func() float64 { return float64(inv.InFlight()) })
	invOpts := invoke.Options{Region: cfg.Region, MaxConcurrency: int64(cfg.MaxConcurrency)}
	var made atomic.Pointer[invoke.Invoker] // the invoker, for the members' beats once it exists
	started := time.Now()
	if st.Clustered() {
		members, err = cluster.Join(openCtx, st.Nodes, cluster.Options{
			Self: cluster.Node{Name: cfg.Node, API: endpoint, HTTP: gatewayURL, Version: config.Version(), Started: started, MaxConcurrency: cfg.MaxConcurrency},
			Load: func() cluster.Load {
				l := cluster.Load{Instances: deps.Live.Load(), Provisioned: pools.ProvisionedReady()}
				if iv := made.Load(); iv != nil {
					l.InFlight = iv.InFlight()
				}
				return l
			},
			TTL: store.NodeTTL, Log: log, Changed: pools.ReconcileAll,
		})
		if err != nil {
			return err
		}
		defer members.Leave(context.Background())
		slots := cluster.NewSlots(st.Slots, members, log)
		defer slots.Close(context.Background())
		invOpts.Limits = slots
		invOpts.ProvisionedElsewhere = func(key string) int {
			n := 0
			for _, node := range members.Live() {
				if node.ID != members.Self().ID {
					n += node.Provisioned[key]
				}
			}
			return n
		}
		log.Info("joined the cluster", "node", cfg.Node, "nodes", len(members.Live()))
	}
	inv = invoke.New(reg, pools, pool.RealClock, usage, metrics, log, invOpts)
	made.Store(inv)
	pools.ReconcileAll()
	queues, err := queue.Open(openCtx, st, queue.NewMetrics(promReg), queue.Options{Region: cfg.Region, Log: log})
	if err != nil {
		return err
	}
	defer queues.Close()
	promReg.MustRegister(queues.Collector())
	mappings, err := esm.Open(openCtx, st.Mappings, queues, inv, log)
	if err != nil {
		return err
	}
	defer mappings.Close(context.Background())
	promReg.MustRegister(mappings.Collector())
	async := events.New(st, reg, inv, log, events.Options{Region: cfg.Region, RetryDelay: cfg.AsyncRetryDelay, Queues: queues, Metrics: promReg})
	if err := async.Start(openCtx); err != nil {
		return err
	}
	defer async.Stop(context.Background())
	fire := func(ctx context.Context, ref string, payload []byte, id string) (bool, error) {
		first, err := async.EnqueueOnce(ctx, ref, payload, id)
		if errors.Is(err, registry.ErrNotFound) {
			err = fmt.Errorf("%w: %v", schedule.ErrTargetGone, err)
		}
		return first, err
	}
	sched, err := schedule.Open(openCtx, st.Schedules, log, fire, func(ctx context.Context, queueARN string, body []byte, attrs map[string]string) error {
		return sendDeadLetter(ctx, queues, queueARN, body, attrs)
	})
	if err != nil {
		return err
	}
	defer sched.Close()

	buckets, err := objects.Open(openCtx, st, objects.DefaultDir(cfg.DataDir), log)
	if err != nil {
		return err
	}
	defer buckets.Close()
	promReg.MustRegister(buckets.Collector())
	promReg.MustRegister(nodeCollector{reg: reg, pools: pools, async: async, st: st, sink: sink})
	// The alerting rules' conditions, for the dashboard; and log groups'
	// retention. Both run until the server stops.
	evaluator := alerts.New(promReg, 15*time.Second, time.Now)
	bgCtx, stopBackground := context.WithCancel(context.Background())
	var background sync.WaitGroup
	background.Go(func() { evaluator.Run(bgCtx) })
	background.Go(func() { expireLogs(bgCtx, st, reg, log) })
	defer func() { stopBackground(); background.Wait() }()
	// Virtual-hosted addressing needs a name: BUCKET.localhost.
	s3Hosts := []string{"localhost"}
	s3Usage := meter.NewS3Meter(st.JS, log, func() map[string]int64 {
		out := map[string]int64{}
		for _, b := range buckets.Buckets() {
			_, out[b.Name] = buckets.Stats(b.Name)
		}
		return out
	})
	defer s3Usage.Close()
	s3 := s3api.New(buckets, ids, s3api.Options{Region: cfg.Region, Hosts: s3Hosts, Log: log, Meter: s3Usage,
		Notify: &s3Notifier{region: cfg.Region, reg: reg, async: async, queues: queues}})
	route := s3Route{hosts: s3Hosts}

	var ready atomic.Bool
	mux := http.NewServeMux()
	lambdaapi.New(reg, inv, log, lambdaapi.Options{Region: cfg.Region, Endpoint: endpoint, Gateway: gatewayURL, Async: async, Mappings: mappings, Auth: ids, URLs: ids, Roles: ids, Packages: buckets, Runtimes: rts}).Register(mux)
	ownNet, _ := launcher.NetworkIsolated()
	sapi := stratusapi.New(st, reg, meter.DefaultPrices, cfg.Region, ids, ids).WithStatus(func(name string) stratusapi.Status {
		idle, total := pools.Instances(name)
		st := stratusapi.Status{Function: name, Network: "host", Instances: total, Warm: idle, Busy: total - idle}
		if ownNet && !hostNet[name] {
			st.Network = "own"
		}
		if urls, err := reg.URLs(name); err == nil {
			for _, u := range urls {
				st.URLs = append(st.URLs, lambdaapi.URLOf(gatewayURL, u.ID))
			}
		}
		return st
	}).WithBuckets(func() []stratusapi.BucketStatus {
		var out []stratusapi.BucketStatus
		for _, b := range buckets.Buckets() {
			n, size := buckets.Stats(b.Name)
			st := stratusapi.BucketStatus{Name: b.Name, Created: b.Created, Objects: n, Bytes: size, Uploads: len(buckets.Uploads(b.Name, ""))}
			if b.Notifications != nil {
				st.Notifications = len(b.Notifications.Functions) + len(b.Notifications.Queues)
				for _, t := range append(append([]objects.Target{}, b.Notifications.Functions...), b.Notifications.Queues...) {
					st.Targets = append(st.Targets, t.ARN)
				}
			}
			out = append(out, st)
		}
		return out
	})
	storeName := "embedded NATS"
	if cfg.NATSURL != "" {
		storeName = cfg.NATSURL
	}
	sapi.WithAlerts(evaluator.Active).WithDashboard(func() []stratusapi.ScheduleStatus {
		var out []stratusapi.ScheduleStatus
		for _, s := range sched.List() {
			out = append(out, stratusapi.ScheduleStatus{Name: s.Name, Group: s.Group, Expression: s.Expression, State: s.State, Target: s.TargetARN, NextRun: sched.NextRun(s.Group, s.Name)})
		}
		return out
	}, func(ctx context.Context) stratusapi.NodeStatus {
		n := stratusapi.NodeStatus{Version: config.Version(), Started: started, Store: storeName, StoreUp: st.NC.IsConnected(), DiskFree: -1,
			Instances: deps.Live.Load(), InFlight: inv.InFlight(), MaxConcurrency: cfg.MaxConcurrency, Functions: len(reg.List())}
		if deps.Warm != nil {
			n.Prewarmed = deps.Warm.PIDs()
		}
		if err := st.Writable(); err != nil {
			n.StoreProblem = err.Error()
		} else {
			n.StoreWritable = n.StoreUp
		}
		if d, err := st.Disk(ctx); err == nil {
			n.StoreUsed, n.StoreMax, n.DiskFree = d.Used, d.Max, d.Free
		}
		n.Node = cfg.Node
		if members == nil {
			n.Nodes = []stratusapi.ClusterNode{{Node: cluster.Node{Name: cfg.Node, API: endpoint, HTTP: gatewayURL, Version: n.Version, Started: started,
				Instances: n.Instances, InFlight: n.InFlight, MaxConcurrency: cfg.MaxConcurrency}, Self: true}}
		} else {
			for _, m := range members.Live() {
				n.Nodes = append(n.Nodes, stratusapi.ClusterNode{Node: m, Self: m.ID == members.Self().ID})
			}
		}
		if st.Clustered() {
			n.Replication, _ = st.Replication(ctx)
		}
		return n
	}).Register(mux)
	sapi.Queues(mux, queues, func(ctx context.Context) (any, error) { return async.Stats(ctx) })
	apigateway.New(apis, reg, log, gatewayURL, cfg.Region, ids).Register(mux)
	schedulerapi.New(sched, reg, log, cfg.Region, ids).Register(mux)
	sqs := sqsapi.New(queues, log, endpoint, ids)
	sqs.Register(mux)
	mux.Handle("POST /{$}", &queryRouter{sqs: sqs, iam: iamapi.New(ids, log), logs: cloudwatchlogs.New(st, reg, ids, log, cfg.Region)})
	ops := http.NewServeMux() // what --metrics-listen serves without credentials
	ops.Handle("GET /metrics", promhttp.HandlerFor(promReg, promhttp.HandlerOpts{}))
	if cfg.Pprof {
		ops.HandleFunc("/debug/pprof/", pprof.Index)
		ops.HandleFunc("/debug/pprof/profile", pprof.Profile)
		ops.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		ops.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("/metrics", allowed(ids, "stratus:GetMetrics", ops))
	mux.Handle("/debug/pprof/", allowed(ids, "stratus:Profile", ops))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "starting or stopping", http.StatusServiceUnavailable)
			return
		}
		// Without its store a node can run warm synchronous invokes but
		// accepts no durable work: a balancer should look elsewhere.
		if !st.NC.IsConnected() {
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
			return
		}
		if err := st.Writable(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	dash := dashboard.Handler()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if dashboard.Public(r) {
			dash.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-ErrorType", "UnknownOperationException")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"Type":"User","message":"Unknown operation ` + r.Method + ` ` + jsonSafe(r.URL.Path) + `"}`))
	})
	// Requests of both listeners run under work: cancelled once the drain
	// timeout has passed, so no invocation outlives the shutdown.
	work, cancelWork := context.WithCancel(context.Background())
	defer cancelWork()
	var limits *callerLimits
	if cfg.RatePerCaller > 0 {
		limits = newCallerLimits(cfg.RatePerCaller)
	}
	srv := &http.Server{
		Handler:           &guard{next: &authn{next: mux, iam: ids, dev: cfg.DevAuth, region: cfg.Region, limits: limits, s3: s3, route: route}, streams: route.match},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return work },
	}
	served := make(chan error, 3)
	apiLn, trigLn := net.Listener(newClientListener(ln)), net.Listener(newClientListener(httpLn))
	if cert != nil {
		apiLn, trigLn = tls.NewListener(apiLn, cert.config()), tls.NewListener(trigLn, cert.config())
		hupCtx, stopHup := context.WithCancel(context.Background())
		hupDone := make(chan struct{})
		go func() { defer close(hupDone); cert.reloadOnHangup(hupCtx) }()
		defer func() { stopHup(); <-hupDone }()
	}
	go func() { served <- srv.Serve(apiLn) }()
	var inTLS *tls.Config
	if cert != nil {
		inTLS = cert.config()
	}
	inAPI.run(srv, inTLS)
	gw := gateway.New(reg, apis, inv, log, gateway.Options{Region: cfg.Region, Trust: ids}).Server()
	gw.ErrorLog = srv.ErrorLog
	gw.BaseContext = srv.BaseContext
	go func() { served <- gw.Serve(trigLn) }()
	servers := []*http.Server{srv, gw}
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.MetricsListen, err)
		}
		msrv := &http.Server{Handler: ops, ReadHeaderTimeout: 10 * time.Second, ErrorLog: srv.ErrorLog}
		servers = append(servers, msrv)
		go func() { served <- msrv.Serve(mln) }()
		log.Info("metrics served without credentials", "addr", mln.Addr().String())
	}
	ready.Store(true)
	mode := "embedded NATS"
	if cfg.NATSURL != "" {
		mode = "NATS at " + cfg.NATSURL
	}
	log.Info("stratus serving", "api", endpoint, "http", gatewayURL, "data", cfg.DataDir, "store", mode,
		"functions", len(reg.List()), "queues", len(queues.List("")), "buckets", len(buckets.Buckets()),
		"max_concurrency", cfg.MaxConcurrency, "dashboard", endpoint+"/")

	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("api listener: %w", err)
	}
	ready.Store(false)
	log.Info("shutting down: draining in-flight invocations", "inflight", inv.InFlight(), "timeout", cfg.DrainTimeout)
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancelDrain()
	// Every source of work stops taking more and lets what runs finish
	// until the drain timeout; then what still runs is cancelled (its
	// instance torn down) and async events and queue batches go back to
	// the store for later, so the whole shutdown is bounded.
	stop := context.AfterFunc(drainCtx, cancelWork)
	defer stop()
	var drain sync.WaitGroup
	for _, s := range servers {
		drain.Go(func() {
			if err := s.Shutdown(drainCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("shutdown", "err", err)
			}
			_ = s.Close()
		})
	}
	drain.Go(func() { sched.Close() })
	drain.Go(func() { async.Stop(drainCtx) })
	drain.Go(func() { mappings.Close(drainCtx) })
	drain.Wait()
	log.Info("shutting down: work drained; stopping instances and flushing logs and usage", "inflight", inv.InFlight())
	inv.Close()
	// Handlers cut off at the deadline return once their invocations see
	// the cancellation; wait for them briefly so none runs past the store.
	for wait := time.Now().Add(2 * time.Second); inv.InFlight() > 0 && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
	}
	// Deferred calls now stop instances, flush logs and usage, and close the store.
	return nil
}

func jsonSafe(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if r == '"' || r == '\\' || r < 0x20 {
			continue
		}
		out = append(out, r)
	}
	return string(out)
}

// logRuntimes says at start which runtimes can run here, on which
// interpreter, and which AWS SDK their functions get.
func logRuntimes(log *slog.Logger, rts *runtimes.Set, nodeSDK string) {
	var names []string
	for _, in := range rts.Interpreters() {
		d := in.Runtime + " (" + in.Version
		if in.MappedFrom != "" {
			d += ", mapped from " + in.MappedFrom
		}
		names = append(names, d+")")
		if in.MappedFrom == "" && strings.HasPrefix(in.Runtime, "python") {
			if in.SDK != "" {
				log.Info("functions of " + in.Runtime + " get the AWS SDK beside its interpreter: boto3 " + in.SDK)
			} else {
				log.Warn("no boto3 beside the interpreter of " + in.Runtime + ": its functions get no AWS SDK unless they bring one")
			}
		}
	}
	if len(names) == 0 {
		log.Warn("no Node.js or Python interpreter on PATH: only OS-only (provided) runtimes can run")
	} else {
		log.Info("runtimes with interpreters: provided.al2023, provided.al2, " + strings.Join(names, ", "))
	}
	if v, n := rts.NodeSDKVersion(); n > 0 {
		log.Info(fmt.Sprintf("Node.js functions get the AWS SDK for JavaScript %s (%d @aws-sdk packages) from %s", v, n, rts.NodeSDK))
	} else {
		log.Info("Node.js functions get no AWS SDK unless they bundle one; to provide it as Lambda does: npm install --prefix " + nodeSDK + " @aws-sdk/client-s3 @aws-sdk/client-sqs @aws-sdk/client-lambda @aws-sdk/client-dynamodb @aws-sdk/lib-dynamodb")
	}
}

// expireLogs removes log events past their group's retention, now and
// then (readers skip them meanwhile).
func expireLogs(ctx context.Context, st *store.Store, reg *registry.Registry, log *slog.Logger) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, fn := range reg.List() {
			if logs.Retention(st, fn.Name) == 0 {
				continue
			}
			if err := logs.Expire(ctx, st, fn.Name); err != nil && ctx.Err() == nil {
				log.Warn("could not expire old log events", "function", fn.Name, "err", err)
			}
		}
	}
}
