package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// BenchmarkScaling: how the warm-invoke cost per request (the server's
// CPU and the p50), the cold start and the memory per idle instance move
// with 10, 100 and 1,000 deployed functions and 1, 32 and 256 concurrent
// requests, on one server. The control plane must not slow down with the
// number of functions: a request finds its function and pool by name, with
// no scan over functions or pools.
func BenchmarkScaling(b *testing.B) {
	s := startServer(b, "", "--idle-timeout", "10m")
	c := s.lambda()
	zip := goZip(b)
	deployed := 0
	deploy := func(n int) {
		var next atomic.Int64
		next.Store(int64(deployed))
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= n {
						return
					}
					createFunction(b, c, fmt.Sprintf("fn%d", i), zip, fnOpts{timeout: 30})
				}
			})
		}
		wg.Wait()
		deployed = n
	}
	cold := 0 // functions after the first that were invoked: the next is cold
	for _, n := range []int{10, 100, 1000} {
		deploy(n)
		b.Run(fmt.Sprintf("functions-%d", n), func(b *testing.B) {
			hot := target{name: "fn0", url: s.Endpoint + "/2015-03-31/functions/fn0/invocations", signed: true, pid: s.cmd.Process.Pid}
			for _, conc := range []int{1, 32, 256} {
				// Warm up until as many instances as connections are warm.
				measure(b, hot, conc, 3*time.Second)
				r := measure(b, hot, conc, 3*time.Second)
				if r.errors > 0 {
					b.Errorf("%d failed invocations at %d concurrent", r.errors, conc)
				}
				b.ReportMetric(float64(r.cpuPerReq.Microseconds()), fmt.Sprintf("c%d-server-cpu-us/req", conc))
				b.ReportMetric(ms(r.p50), fmt.Sprintf("c%d-p50-ms", conc))
				b.ReportMetric(r.rps, fmt.Sprintf("c%d-invokes/s", conc))
			}
			// Cold starts of functions never invoked before.
			var lat []time.Duration
			for range 9 {
				cold++
				name := fmt.Sprintf("fn%d", cold)
				t0 := time.Now()
				out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(benchBody)})
				if err != nil || out.FunctionError != nil {
					b.Fatalf("cold invoke of %s: %v", name, err)
				}
				lat = append(lat, time.Since(t0))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(ms(lat[len(lat)/2]), "cold-p50-ms")
			// Memory: the idle instances (fn0's, and one of each cold
			// function) and the server's own.
			inst := s.instances()
			var total int64
			for _, p := range inst {
				total += rssKB(p)
			}
			b.ReportMetric(float64(total)/float64(len(inst))/1024, "MB/idle-instance")
			b.ReportMetric(float64(len(inst)), "idle-instances")
			b.ReportMetric(float64(rssKB(s.cmd.Process.Pid))/1024, "server-MB")
		})
	}
}
