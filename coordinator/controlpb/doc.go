// Package controlpb holds the generated protobuf and gRPC code of the dsae
// control plane, described in control.proto. Do not edit the generated
// files; regenerate them from control.proto with the pinned generators.
package controlpb
