// Package ringpb holds the generated protobuf and gRPC code of the ring
// all-reduce wire protocol described in ring.proto. Do not edit the
// generated files; change ring.proto and run scripts/genproto.sh.
package ringpb

//go:generate ../../scripts/genproto.sh
