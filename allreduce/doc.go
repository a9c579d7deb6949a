// Package allreduce sums float32 and float64 buffers across the workers of
// a dsae job with a bandwidth-optimal ring all-reduce over gRPC, so that
// every worker ends with bitwise identical sums.
//
// # Model
//
// Every worker runs one gRPC server with a Service registered on it (see
// Service.Register and ServerOptions, or StartServer). For each generation
// of a job, each member builds a Ring from the ordered member list and its
// rank; rank r streams to rank r+1 and receives from rank r-1. A call
//
//	err := ring.AllReduceFloat32(ctx, ring.Tag(step, phase), buf)
//
// replaces buf on every rank with the element-wise sum over all ranks. The
// buffer is cut into N chunks; a reduce-scatter (N-1 steps) sums each chunk
// on its way round the ring and an all-gather (N-1 steps) sends the final
// sums round again, each rank sending and receiving 2(N-1)/N of the buffer
// in total. Chunks travel in pieces (Config.PieceBytes) so that sending,
// receiving and adding overlap. Each chunk is summed in the same order on
// every call, starting at one rank and finishing at another, which then
// sends the final bits to all: results are bitwise identical on every rank.
// N = 1 is a no-op; any buffer length works (0, fewer elements than ranks,
// not divisible by N).
//
// # Tags, generations and refusals
//
// Every message carries its call's Tag (job, generation, step, phase).
// Within a ring the (step, phase) of successive calls must grow. A piece of
// another job or generation, or of an earlier call, is refused and counted
// (Service.Refused), never added; a stream opened by a ring of an older
// generation than one the worker serves is refused. Messages of the next
// call never overtake the current one: each lane is one ordered stream, and
// HTTP/2 flow control holds a sender that runs ahead.
//
// # Failures
//
// A call fails when a neighbour's stream breaks (a peer died, closed its
// ring or failed), when nothing moves for Config.Timeout (a hung peer), or
// when ctx is done. The failure breaks the ring: both neighbours see their
// streams end and fail too, so every surviving rank returns an error within
// the timeout. A broken ring refuses further calls (ErrBroken); the caller
// moves to a new generation and builds a new Ring. Close releases every
// goroutine and stream.
//
// # Wire format
//
// ringpb/ring.proto defines the protocol. Data travel as bytes fields of
// little-endian IEEE 754 values, never as repeated floats. The package's
// gRPC codec ("dsae-ring") hands a piece of 4 KiB or more to gRPC straight
// from the caller's buffer (a call returns only once gRPC has released it),
// and decodes a received piece straight from gRPC's receive buffers into
// the destination, adding as it goes; peers using the plain proto codec
// interoperate.
//
// Authentication (a token in metadata, TLS) is added through
// Config.DialOptions and the grpc.ServerOptions passed to StartServer or to
// the worker's own gRPC server.
package allreduce
