package objects

import "github.com/prometheus/client_golang/prometheus"

// Collector reports each bucket's objects and bytes.
func (s *Store) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Store }

var (
	descObjects = prometheus.NewDesc("stratus_s3_objects", "Objects in the bucket.", []string{"bucket"}, nil)
	descBytes   = prometheus.NewDesc("stratus_s3_bytes", "Bytes of the bucket's objects.", []string{"bucket"}, nil)
	descUploads = prometheus.NewDesc("stratus_s3_multipart_uploads", "Multipart uploads in progress.", []string{"bucket"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descObjects
	ch <- descBytes
	ch <- descUploads
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.s.Buckets() {
		n, bytes := c.s.Stats(b.Name)
		ch <- prometheus.MustNewConstMetric(descObjects, prometheus.GaugeValue, float64(n), b.Name)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.GaugeValue, float64(bytes), b.Name)
		ch <- prometheus.MustNewConstMetric(descUploads, prometheus.GaugeValue, float64(len(c.s.Uploads(b.Name, ""))), b.Name)
	}
}
