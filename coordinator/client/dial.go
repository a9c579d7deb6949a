package client

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/dsae/dsae/coordinator/auth"
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
		return nil, fmt.Errorf("%w: no coordinator address", ErrInvalidConfig)
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
			return nil, fmt.Errorf("%w: coordinator address %q: %v", ErrInvalidConfig, ad, err)
		}
		// Each address is verified (TLS) under its own host name, not the
		// name of the combined target.
		st.Addresses = append(st.Addresses, resolver.Address{Addr: ad, ServerName: host})
	}
	r.InitialState(st)
	opts = append(opts, grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(retryPolicy))
	return grpc.NewClient(r.Scheme()+":///coordinators", opts...)
}
