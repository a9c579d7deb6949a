package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
)

// Every long-running role (coordinator, worker, s3 serve) exports its
// Prometheus metrics the same way: --metrics-addr names where, and
// startRoleMetrics serves one registry there holding the Go runtime and
// process collectors plus what the role registers on it. The packages
// below cmd only register their collectors on the Registerer they are
// given; none of them serves HTTP.

// addMetricsFlag registers --metrics-addr on fs, stored in addr.
func addMetricsFlag(fs *pflag.FlagSet, addr *string) {
	fs.StringVar(addr, "metrics-addr", "", "host:port to serve Prometheus /metrics on (off when empty)")
}

// startRoleMetrics serves /metrics on addr and returns the registry the
// role registers its collectors on, and the server, to Close when the role
// ends. With addr empty nothing is served: reg and ms are nil (the role
// then keeps its metrics to itself; a nil *metricsServer's Close and Addr
// do nothing). Errors name the flag; a malformed address is invalid input
// (exit 2), one that cannot be listened on (in use) is left to the caller
// to classify.
func startRoleMetrics(addr string) (reg prometheus.Registerer, ms *metricsServer, err error) {
	if addr == "" {
		return nil, nil, nil
	}
	if err := checkListenAddr(addr); err != nil {
		return nil, nil, invalid(fmt.Errorf("--metrics-addr %q: %w", addr, err))
	}
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if ms, err = serveMetrics(addr, r); err != nil {
		return nil, nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	return r, ms, nil
}

// checkListenAddr accepts host:port with a port in [0, 65535] (0 picks a
// free one); an empty host listens on every interface.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number in [0, 65535]", port)
	}
	return nil
}

// metricsServer serves one registry as /metrics (see serveMetrics).
type metricsServer struct {
	addr string
	hs   *http.Server
	done chan struct{} // closed when Serve has returned
}

// serveMetrics serves g as Prometheus /metrics on addr (port 0 picks a
// free one) from a goroutine of its own until Close. It listens before it
// returns, so an address in use is its error, not a log line later.
func serveMetrics(addr string, g prometheus.Gatherer) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	m := &metricsServer{addr: ln.Addr().String(), hs: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{})}
	go func() {
		defer close(m.done)
		if err := m.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("metrics server stopped", "addr", m.addr, "err", err)
		}
	}()
	slog.Info("metrics listening", "addr", m.addr)
	return m, nil
}

// Addr is the address the server listens on ("" for a nil server).
func (m *metricsServer) Addr() string {
	if m == nil {
		return ""
	}
	return m.addr
}

// Close stops accepting scrapes, lets those in flight finish (for at most
// a second, then cuts them) and returns once the server's goroutine has
// ended and the port is free. Closing a nil server does nothing.
func (m *metricsServer) Close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := m.hs.Shutdown(ctx); err != nil {
		m.hs.Close()
	}
	<-m.done
}
