package s3server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// serverMetrics are the Prometheus series of a Server:
//
//	dsae_s3server_requests_total{op,code}          requests by S3 operation and HTTP status
//	dsae_s3server_request_duration_seconds{op}     latency by operation
//	dsae_s3server_received_bytes_total             request body bytes read
//	dsae_s3server_sent_bytes_total                 response body bytes written
//
// A nil *serverMetrics records nothing.
type serverMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	in, out  prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dsae", Subsystem: "s3server",
			Name: "requests_total", Help: "S3 requests by operation and HTTP status code."}, []string{"op", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "dsae", Subsystem: "s3server",
			Name: "request_duration_seconds", Help: "S3 request latency by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10)}, []string{"op"}),
		in: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dsae", Subsystem: "s3server",
			Name: "received_bytes_total", Help: "Request body bytes read."}),
		out: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dsae", Subsystem: "s3server",
			Name: "sent_bytes_total", Help: "Response body bytes written."}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.in, m.out} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *serverMetrics) observe(op string, status int, in, out int64, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(op, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(op).Observe(d.Seconds())
	m.in.Add(float64(in))
	m.out.Add(float64(out))
}
