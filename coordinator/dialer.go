package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/dsae/dsae/coordinator/auth"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

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
