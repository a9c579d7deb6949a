// Package auth turns the one cluster secret of dsae into the credentials of
// every channel: the memberlist gossip key (GossipKey) and a token that
// every gRPC call carries in its metadata (ServerOptions, DialOptions). TLS
// is used when a certificate is given, mutual TLS when a CA is given too.
//
// The coordinators, the workers and the all-reduce ring all build their gRPC
// servers and clients from the same Config, so a process without the
// secret can neither join, submit, read state, nor inject gradients:
//
//	cfg := auth.Config{Secret: secret}
//	srvOpts, _ := cfg.ServerOptions()
//	srv := grpc.NewServer(srvOpts...)
//	dialOpts, _ := cfg.DialOptions()
//	conn, _ := grpc.NewClient(addr, dialOpts...)
//
// Neither the secret nor anything derived from it is ever logged; Config's
// String method redacts it.
package auth
