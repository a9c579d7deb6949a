// Package transferpb holds the generated protobuf and gRPC code of the
// state transfer between workers described in transfer.proto. Do not edit
// the generated files; change transfer.proto and run scripts/genproto.sh.
package transferpb

//go:generate ../../scripts/genproto.sh
