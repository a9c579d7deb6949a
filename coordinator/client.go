package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/dsae/dsae/coordinator/auth"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

// retryPolicy makes clients retry a call on another coordinator when one is
// down or has no leader (codes.Unavailable), with capped exponential backoff.
const retryPolicy = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "dsae.control.v1.Control"}],
    "waitForReady": true,
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.1s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Dial connects to a coordinator cluster given the gRPC addresses of any of
// its members. Calls are spread over the reachable ones and retried on
// another when one fails with Unavailable, so a client survives the loss of
// a coordinator. Every call carries the cluster token from a. The caller
// closes the connection.
func Dial(addrs []string, a auth.Config) (*grpc.ClientConn, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: no coordinator address", ErrBadConfig)
	}
	opts, err := a.DialOptions()
	if err != nil {
		return nil, err
	}
	r := manual.NewBuilderWithScheme("dsae")
	var st resolver.State
	for _, ad := range addrs {
		ad = strings.TrimSpace(ad)
		host, _, err := net.SplitHostPort(ad)
		if err != nil {
			return nil, fmt.Errorf("%w: coordinator address %q: %v", ErrBadConfig, ad, err)
		}
		// Each address is verified (TLS) under its own host name, not the
		// name of the combined target.
		st.Addresses = append(st.Addresses, resolver.Address{Addr: ad, ServerName: host})
	}
	r.InitialState(st)
	opts = append(opts, grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(retryPolicy))
	return grpc.NewClient(r.Scheme()+":///coordinators", opts...)
}

// dialer caches one connection per peer coordinator, for forwarding writes
// to the leader and for joining; worker health probes use its options on
// fresh connections.
type dialer struct {
	opts []grpc.DialOption

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func newDialer(a auth.Config) (*dialer, error) {
	opts, err := a.DialOptions()
	if err != nil {
		return nil, err
	}
	return &dialer{opts: opts, conns: map[string]*grpc.ClientConn{}}, nil
}

func (d *dialer) client(addr string) (pb.ControlClient, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.conns[addr]
	if !ok {
		var err error
		if c, err = grpc.NewClient(addr, d.opts...); err != nil {
			return nil, err
		}
		d.conns[addr] = c
	}
	return pb.NewControlClient(c), nil
}

// probe asks the standard gRPC health service of the process at addr
// (service "", the process as a whole) whether it serves, over a fresh
// connection with the cluster's credentials; ctx bounds the whole probe.
// It returns nil only for SERVING.
func (d *dialer) probe(ctx context.Context, addr string) error {
	if addr == "" {
		return errors.New("no gRPC address")
	}
	conn, err := grpc.NewClient(addr, d.opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health status %s", resp.Status)
	}
	return nil
}

func (d *dialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for a, c := range d.conns {
		c.Close()
		delete(d.conns, a)
	}
}
