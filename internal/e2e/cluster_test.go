package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	stypes "github.com/aws/aws-sdk-go-v2/service/scheduler/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// clusterNode is one Stratus node of a test cluster, in a network
// namespace of its own (its "host"); nsenter execs the server, so the
// server's kill and stop apply.
type clusterNode struct {
	*server
	name, ns, ip string
	args         []string
}

func (n *clusterNode) launch(t testing.TB) {
	t.Helper()
	// nsenter, not ip netns exec: that mounts a /sys of its own, without
	// the cgroup file system the sandbox needs.
	n.cmd = exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + n.ns, stratusBin}, n.args...)...)
	n.out = &lockedBuffer{}
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(n.done) }()
}

// healthy waits for the node to answer its health check.
func (n *clusterNode) healthy(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := healthClient.Get(n.Endpoint + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-n.done:
			t.Fatalf("node %s exited during start:\n%s", n.name, n.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s not healthy after 90s:\n%s", n.name, n.out.String())
		}
	}
}

// clusterCert makes one certificate authority and a certificate for
// every node's route, signed by it.
func clusterCert(t testing.TB, dir string, ips []string) (ca, cert, key string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stratus test cluster"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "stratus node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, a := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(a))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(nodeKey)
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")
	for f, b := range map[string]*pem.Block{ca: {Type: "CERTIFICATE", Bytes: caDER}, cert: {Type: "CERTIFICATE", Bytes: der}, key: {Type: "EC PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return ca, cert, key
}

// startCluster builds three hosts (network namespaces on a bridge the
// test makes, addresses of its own) and runs a Stratus node on each,
// their embedded NATS servers forming one cluster over mutual TLS.
func startCluster(t testing.TB, extra ...string) []*clusterNode {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces need root; CI runs the tests as root")
	}
	id := os.Getpid() % 100000
	sub := 10 + os.Getpid()%200
	br := fmt.Sprintf("stc%d", id)
	ip(t, "link", "add", br, "type", "bridge")
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", br).Run() })
	gw := fmt.Sprintf("10.%d.88.254", sub)
	ip(t, "addr", "add", gw+"/24", "dev", br)
	ip(t, "link", "set", br, "up")
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(rand.Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	var ips, peers []string
	for i := 1; i <= 3; i++ {
		a := fmt.Sprintf("10.%d.88.%d", sub, i)
		ips = append(ips, a)
		peers = append(peers, a+":6222")
	}
	ca, cert, key := clusterCert(t, dir, ips)
	var nodes []*clusterNode
	for i, a := range ips {
		ns := fmt.Sprintf("stratus-cl%d-%d", id, i+1)
		host, peer := fmt.Sprintf("sc%d%dh", id, i+1), fmt.Sprintf("sc%d%dp", id, i+1)
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		ip(t, "link", "add", host, "type", "veth", "peer", "name", peer)
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
		ip(t, "link", "set", peer, "netns", ns)
		ip(t, "link", "set", host, "master", br)
		ip(t, "link", "set", host, "up")
		ip(t, "-n", ns, "addr", "add", a+"/24", "dev", peer)
		ip(t, "-n", ns, "link", "set", peer, "up")
		ip(t, "-n", ns, "link", "set", "lo", "up")
		ip(t, "-n", ns, "route", "add", "default", "via", gw)
		data := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
		n := &clusterNode{name: fmt.Sprintf("node%d", i+1), ns: ns, ip: a,
			server: &server{t: t, dataDir: data, addr: a + ":9000", Endpoint: "http://" + a + ":9000"}}
		n.args = append([]string{"server", "--listen", a + ":9000", "--http-listen", a + ":8080", "--data-dir", data, "--allow-plain-http",
			"--node-name", n.name, "--cluster-name", "test", "--cluster-listen", a + ":6222", "--cluster-peers", strings.Join(peers, ","),
			"--cluster-secret-file", secret, "--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", ca, "--prewarm", "0",
			// A failed attempt (an init timing out on this loaded machine) is
			// tried again soon, within the test's wait.
			"--async-retry-delay", "2s"}, extra...)
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		n.launch(t)
		t.Cleanup(func() {
			n.kill()
			if t.Failed() {
				t.Logf("%s output:\n%s", n.name, n.out.String())
			}
		})
	}
	for _, n := range nodes {
		n.healthy(t)
		n.loadCredentials() // one root key for the whole cluster
	}
	nodes[0].ensureRoles()
	return nodes
}

// clusterWork records each item it handles in the queue "results", and
// says when it ran.
const clusterWork = `import json, os, time
import boto3

sqs = boto3.client("sqs")
url = None

def handler(event, context):
    global url
    if url is None:
        url = sqs.get_queue_url(QueueName="results")["QueueUrl"]
    start = time.time()
    time.sleep(float(os.environ.get("SLEEP", "0.05")))
    if "Records" in event:
        ids = [r["body"] for r in event["Records"]]
    else:
        ids = [str(event["id"])] if "id" in event else []
    for i in ids:
        sqs.send_message(QueueUrl=url, MessageBody=i)
    return {"start": start, "end": time.time()}
`

type nodeStatus struct {
	Node  string `json:"node"`
	Nodes []struct {
		Name string `json:"name"`
	} `json:"nodes"`
	Replication []struct {
		Name     string   `json:"name"`
		Replicas int      `json:"replicas"`
		Current  int      `json:"current"`
		Leader   string   `json:"leader"`
		Offline  []string `json:"offline"`
	} `json:"replication"`
}

func (s *server) nodeStatus(t testing.TB) nodeStatus {
	t.Helper()
	var st nodeStatus
	resp, err := http.Get(s.Endpoint + "/stratus/v1/node")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCluster: three hosts, three nodes, one NATS cluster of their
// embedded servers. A function deployed through one node answers on the
// others, an object put through one is read through another, a
// schedule's tick runs once; a reserved concurrency of 5 holds across the cluster; async
// events and queue messages spread over the nodes, and when one node is
// killed with SIGKILL mid-load every acknowledged item is still handled
// (duplicates counted); the node comes back and catches up by itself.
func TestCluster(t *testing.T) {
	nodes := startCluster(t)
	ctx := context.Background()
	st := nodes[1].nodeStatus(t)
	if len(st.Nodes) != 3 {
		t.Fatalf("node2 sees %d nodes, want 3: %+v", len(st.Nodes), st.Nodes)
	}
	for _, r := range st.Replication {
		if r.Replicas != 3 {
			t.Errorf("stream %s has %d replicas, want 3", r.Name, r.Replicas)
		}
	}
	lc := make([]*lambda.Client, 3)
	for i, n := range nodes {
		lc[i] = n.lambda()
	}
	qc := nodes[0].sqs()
	results := createQueue(t, qc, "results", nil)
	zip := makeZip(t, map[string][]byte{"lambda_function.py": []byte(clusterWork)})
	py := fnOpts{runtime: "python3.11", handler: "lambda_function.handler", timeout: 30}

	// Deployed once through node1; node2 and node3 serve it.
	createFunction(t, lc[0], "work", zip, py)
	deployed := time.Now()
	for i := 1; i < 3; i++ {
		waitFor(t, 5*time.Second, "the function on "+nodes[i].name, func() bool {
			_, err := lc[i].GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String("work")})
			return err == nil
		})
	}
	t.Logf("a function deployed on node1 is known on node2 and node3 after %v", time.Since(deployed))
	for i := range 3 {
		out := invoke(t, lc[i], "work", `{}`)
		if out.FunctionError != nil {
			t.Fatalf("invoke through %s: %s", nodes[i].name, out.Payload)
		}
	}

	// An object put through node1 is read through node3.
	body := make([]byte, 1<<20)
	_, _ = rand.Read(body)
	if _, err := nodes[0].s3(t).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("shared")}); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].s3(t).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("shared"), Key: aws.String("k"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	got, err := nodes[2].s3(t).GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("shared"), Key: aws.String("k")})
	if err != nil {
		t.Fatalf("the object put through node1, through node3: %v", err)
	}
	if b, _ := io.ReadAll(got.Body); !bytes.Equal(b, body) {
		t.Errorf("node3 read %d bytes, not the 1 MiB put through node1", len(b))
	}
	got.Body.Close()

	// A schedule's tick fires once for the cluster, though every node
	// keeps the schedule.
	when := time.Now().UTC().Add(3 * time.Second).Format("2006-01-02T15:04:05")
	if _, err := nodes[1].scheduler().CreateSchedule(ctx, &scheduler.CreateScheduleInput{Name: aws.String("once"), ScheduleExpression: aws.String("at(" + when + ")"),
		Target:             &stypes.Target{Arn: aws.String("arn:aws:lambda:us-east-1:000000000000:function:work"), RoleArn: aws.String("arn:aws:iam::000000000000:role/x"), Input: aws.String(`{"id":"tick"}`)},
		FlexibleTimeWindow: &stypes.FlexibleTimeWindow{Mode: stypes.FlexibleTimeWindowModeOff}}); err != nil {
		t.Fatal(err)
	}
	if dups := handled(t, qc, results, map[string]bool{"tick": true}, 30*time.Second); dups != 0 {
		t.Errorf("one tick ran %d times", dups+1)
	}
	for _, m := range receive(t, qc, results, 10, 2) { // a second run would come within a moment
		if *m.Body == "tick" {
			t.Error("one tick ran twice, on two nodes")
		}
	}

	// Reserved concurrency 5 for the cluster as a whole: 24 callers spread
	// over the three nodes never see more than 5 run at once.
	py.env = map[string]string{"SLEEP": "0.3"}
	createFunction(t, lc[0], "limited", zip, py)
	if _, err := lc[0].PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("limited"), ReservedConcurrentExecutions: aws.Int32(5)}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		waitFor(t, 5*time.Second, "the reserved concurrency on "+nodes[i].name, func() bool {
			out, err := lc[i].GetFunctionConcurrency(ctx, &lambda.GetFunctionConcurrencyInput{FunctionName: aws.String("limited")})
			return err == nil && out.ReservedConcurrentExecutions != nil
		})
	}
	type span struct{ start, end float64 }
	var mu sync.Mutex
	var spans []span
	var throttled atomic.Int64
	perNode := make([]atomic.Int64, 3)
	var wg sync.WaitGroup
	until := time.Now().Add(6 * time.Second)
	for w := range 24 {
		wg.Go(func() {
			for time.Now().Before(until) {
				out, err := lc[w%3].Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("limited"), Payload: []byte(`{}`)})
				if err != nil {
					if errorCode(err) == "TooManyRequestsException" {
						throttled.Add(1)
						time.Sleep(20 * time.Millisecond)
						continue
					}
					t.Errorf("invoke limited: %v", err)
					return
				}
				var sp struct{ Start, End float64 }
				if json.Unmarshal(out.Payload, &sp) != nil || sp.End == 0 {
					t.Errorf("limited answered %s", out.Payload)
					return
				}
				perNode[w%3].Add(1)
				mu.Lock()
				spans = append(spans, span{sp.Start, sp.End})
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	peak := 0
	for _, a := range spans {
		at := 0
		for _, b := range spans {
			if b.start <= a.start && a.start < b.end {
				at++
			}
		}
		peak = max(peak, at)
	}
	t.Logf("reserved concurrency 5: %d ran (by node %d/%d/%d), %d throttled, at most %d at once", len(spans), perNode[0].Load(), perNode[1].Load(), perNode[2].Load(), throttled.Load(), peak)
	if peak > 5 {
		t.Errorf("%d invocations ran at once under a reserved concurrency of 5 for the cluster", peak)
	}
	if throttled.Load() == 0 {
		t.Error("24 callers of a function limited to 5 were never throttled")
	}
	for i := range perNode {
		if perNode[i].Load() == 0 {
			t.Errorf("no invocation through %s ran", nodes[i].name)
		}
	}

	// Async events and queue messages spread over the nodes; node3 dies
	// with SIGKILL half way.
	// At most 12 at once, cluster-wide: more Python cold starts at once
	// than that overload this two-core machine past the 10 s init limit.
	if _, err := lc[0].PutFunctionConcurrency(ctx, &lambda.PutFunctionConcurrencyInput{FunctionName: aws.String("work"), ReservedConcurrentExecutions: aws.Int32(12)}); err != nil {
		t.Fatal(err)
	}
	in := createQueue(t, qc, "in", map[string]string{"VisibilityTimeout": "10"})
	if _, err := lc[0].CreateEventSourceMapping(ctx, &lambda.CreateEventSourceMappingInput{FunctionName: aws.String("work"),
		EventSourceArn: aws.String(queueAttrs(t, qc, in)["QueueArn"]), BatchSize: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	sqsOf := make([]*sqs.Client, 3)
	for i, n := range nodes {
		sqsOf[i] = n.sqs()
	}
	const items = 240
	var accMu sync.Mutex
	accepted := map[string]bool{}
	var live atomic.Int32
	live.Store(3)
	// Each item is offered to nodes in turn until one acknowledges it.
	send := func(k int) {
		id := strconv.Itoa(k)
		for try := 0; try < 6; try++ {
			i := (k + try) % int(live.Load())
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			var err error
			if k%2 == 0 {
				_, err = lc[i].Invoke(cctx, &lambda.InvokeInput{FunctionName: aws.String("work"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"id":"` + id + `"}`)})
			} else {
				_, err = sqsOf[i].SendMessage(cctx, &sqs.SendMessageInput{QueueUrl: aws.String(in), MessageBody: aws.String(id)})
			}
			cancel()
			if err == nil {
				accMu.Lock()
				accepted[id] = true
				accMu.Unlock()
				return
			}
		}
	}
	var lat []time.Duration
	var latMu sync.Mutex
	stopSync := make(chan struct{})
	var syncWG sync.WaitGroup
	// Synchronous invokes on the survivors all along: their latency
	// while a node dies.
	syncWG.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stopSync:
				return
			default:
			}
			t0 := time.Now()
			if _, err := lc[k%2].Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("work"), Payload: []byte(`{}`)}); err == nil {
				latMu.Lock()
				lat = append(lat, time.Since(t0))
				latMu.Unlock()
			}
		}
	})
	sem := make(chan struct{}, 8)
	var sendWG sync.WaitGroup
	for k := range items {
		if k == items/2 {
			sendWG.Wait()
			nodes[2].kill()
			live.Store(2)
			t.Logf("node3 killed after %d items", k)
		}
		sem <- struct{}{}
		sendWG.Go(func() { defer func() { <-sem }(); send(k) })
	}
	sendWG.Wait()
	t.Logf("%d of %d items acknowledged (the others were refused by every node tried)", len(accepted), items)
	if len(accepted) < items*9/10 {
		t.Errorf("only %d of %d items were accepted with one node of three down", len(accepted), items)
	}
	// Generous: past the kill, queue messages that meet a throttle (the
	// function is limited to 12 for the whole load) wait out their
	// visibility timeout each time.
	dups := handled(t, qc, results, accepted, 300*time.Second)
	close(stopSync)
	syncWG.Wait()
	slices.Sort(lat)
	var p50, p99 time.Duration
	if len(lat) > 0 {
		p50, p99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	t.Logf("node loss: %d items acknowledged, all handled, %d duplicates; %d synchronous invokes on the survivors meanwhile, p50 %v p99 %v", len(accepted), dups, len(lat), p50, p99)
	if dups > len(accepted)/10 {
		t.Errorf("%d duplicates for %d items: a redelivery storm", dups, len(accepted))
	}

	// While node3 is down a function is deployed; back, it catches up.
	createFunction(t, lc[0], "late", zip, fnOpts{runtime: "python3.11", handler: "lambda_function.handler"})
	nodes[2].launch(t)
	back := time.Now()
	nodes[2].healthy(t)
	t.Logf("node3 healthy again %v after its restart", time.Since(back))
	out := invoke(t, lc[2], "late", `{}`)
	if out.FunctionError != nil {
		t.Fatalf("node3 after its restart: %s", out.Payload)
	}
	waitFor(t, 60*time.Second, "every stream's three copies current again", func() bool {
		st := nodes[2].nodeStatus(t)
		if len(st.Nodes) != 3 {
			return false
		}
		for _, r := range st.Replication {
			if r.Current != 3 || r.Leader == "" {
				return false
			}
		}
		return true
	})

	// Provisioned concurrency 3 is split over the three nodes: one each.
	v, err := lc[0].PublishVersion(ctx, &lambda.PublishVersionInput{FunctionName: aws.String("work")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc[0].PutProvisionedConcurrencyConfig(ctx, &lambda.PutProvisionedConcurrencyConfigInput{FunctionName: aws.String("work"),
		Qualifier: v.Version, ProvisionedConcurrentExecutions: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "provisioned concurrency READY across the cluster", func() bool {
		out, err := lc[1].GetProvisionedConcurrencyConfig(ctx, &lambda.GetProvisionedConcurrencyConfigInput{FunctionName: aws.String("work"), Qualifier: v.Version})
		return err == nil && out.Status == types.ProvisionedConcurrencyStatusEnumReady && aws.ToInt32(out.AllocatedProvisionedConcurrentExecutions) == 3
	})
	for _, n := range nodes {
		if got := metricValue(t, n.server, `stratus_function_provisioned_instances{function="work"}`); got != 1 {
			t.Errorf("%s keeps %v provisioned instances of 3 split over three nodes, want 1", n.name, got)
		}
	}

	// A graceful stop (SIGTERM) of a node mid-load loses nothing either.
	more := map[string]bool{}
	for k := range 60 {
		if k == 30 {
			if err := nodes[1].cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		}
		id := "term-" + strconv.Itoa(k)
		for _, i := range []int{k % 3, 0, 2} {
			if _, err := lc[i].Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("work"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{"id":"` + id + `"}`)}); err == nil {
				more[id] = true
				break
			}
		}
	}
	select {
	case <-nodes[1].done:
	case <-time.After(60 * time.Second):
		t.Fatal("node2 did not stop within 60 s of SIGTERM")
	}
	if code := nodes[1].cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("node2 exited with %d after SIGTERM", code)
	}
	dups = handled(t, qc, results, more, 60*time.Second)
	t.Logf("graceful stop: %d of 60 events acknowledged, all handled, %d duplicates", len(more), dups)
}

// handled waits until every accepted id is in the results queue, and
// counts those seen more than once.
func handled(t *testing.T, qc *sqs.Client, results string, accepted map[string]bool, d time.Duration) (dups int) {
	t.Helper()
	ctx := context.Background()
	seen := map[string]int{}
	deadline := time.Now().Add(d)
	for {
		var missing []string
		for id := range accepted {
			if seen[id] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged items never handled (even numbers: async events, odd: queue messages): %v", len(missing), len(accepted), missing)
		}
		for _, m := range receive(t, qc, results, 10, 1) {
			seen[*m.Body]++
			if _, err := qc.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(results), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for id, n := range seen {
		if accepted[id] {
			dups += n - 1
		}
	}
	return dups
}

// healthClient asks for health with a deadline: a node starting may not answer.
var healthClient = &http.Client{Timeout: 5 * time.Second, Transport: plainClient.Transport}

// BenchmarkCluster: warm invokes at 32 concurrent through one node
// against the same through three nodes of a cluster (round robin, all on
// this one machine), and the latency of accepting an asynchronous event
// on one node (one copy) against the cluster (three copies).
func BenchmarkCluster(b *testing.B) {
	single := startServer(b, "", "--prewarm", "0")
	createFunction(b, single.lambda(), "bench", goZip(b), fnOpts{})
	one := clusterLoad(b, []*lambda.Client{single.lambda()})
	nodes := startCluster(b)
	var lcs []*lambda.Client
	for _, n := range nodes {
		lcs = append(lcs, n.lambda())
	}
	createFunction(b, lcs[0], "bench", goZip(b), fnOpts{})
	three := clusterLoad(b, lcs)
	b.Logf("warm invoke, 32 concurrent: one node %.0f req/s p50 %.2f ms p99 %.2f ms; three nodes %.0f req/s p50 %.2f ms p99 %.2f ms (%.2fx)",
		one.rps, ms(one.p50), ms(one.p99), three.rps, ms(three.p50), ms(three.p99), three.rps/one.rps)
	b.Logf("async accept p50: one node %.2f ms (1 copy), cluster %.2f ms (3 copies, +%.2f ms)", ms(one.accept), ms(three.accept), ms(three.accept-one.accept))
	b.ReportMetric(three.rps/one.rps, "three/one")
	b.ReportMetric(ms(three.accept-one.accept), "replicated-accept-added-ms")
}

type clusterResult struct {
	rps      float64
	p50, p99 time.Duration
	accept   time.Duration
}

func clusterLoad(b *testing.B, lcs []*lambda.Client) clusterResult {
	b.Helper()
	ctx := context.Background()
	for _, lc := range lcs { // warm every node
		for range 32 {
			invoke(b, lc, "bench", `{}`)
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	until := time.Now().Add(5 * time.Second)
	for w := range 32 {
		wg.Go(func() {
			var mine []time.Duration
			for k := w; time.Now().Before(until); k++ {
				t0 := time.Now()
				if _, err := lcs[k%len(lcs)].Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("bench"), Payload: []byte(`{}`)}); err != nil {
					b.Error(err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	r := clusterResult{rps: float64(len(lat)) / 5, p50: lat[len(lat)/2], p99: lat[len(lat)*99/100]}
	var acc []time.Duration
	for k := range 200 {
		t0 := time.Now()
		if _, err := lcs[k%len(lcs)].Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("bench"), InvocationType: types.InvocationTypeEvent, Payload: []byte(`{}`)}); err != nil {
			b.Fatal(err)
		}
		acc = append(acc, time.Since(t0))
	}
	slices.Sort(acc)
	r.accept = acc[len(acc)/2]
	return r
}
