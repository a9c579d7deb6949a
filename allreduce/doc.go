// Package allreduce sums float32 and float64 buffers across the workers of
// a dsae job with a bandwidth-optimal ring all-reduce coordinated over gRPC,
// so that every worker ends with bitwise identical sums.
//
// # Model
//
// Every worker runs one gRPC server with a Service registered on it and a
// BulkServer for it (see Service.Register, ServerOptions and ListenBulk, or
// StartServer, which does all three). For each generation
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
// generation than one the worker serves is refused, and so is a bulk
// connection without a valid token. Messages of the next call never
// overtake the current one: each lane is one ordered stream, and flow
// control (HTTP/2's, or TCP's and the socket buffers') holds a sender that
// runs ahead.
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
// # Data paths
//
// Each lane's gRPC stream opens the lane: the Hello names the ring, both
// ranks, the data path and the piece size, and the receiver accepts or
// refuses it. The pieces themselves travel one of two ways (Config.DataPath,
// the same on every member):
//
//   - DataBulk (the default): the Accept offers a one-time token and the
//     receiver's bulk addresses; the sender opens a plain byte stream to one
//     of them, a Unix socket when both ranks run on one host (same kernel and
//     host name, and the socket reachable) and TCP otherwise, and presents
//     the token. Pieces are a fixed 64-byte header and the data, written with
//     one gathering write straight from the caller's buffer and read straight
//     into place or, when added, in 256 KiB parts that are still in cache.
//     The acknowledgement of each call comes back on the same byte stream.
//     The gRPC stream stays open, and its end still tells a rank that its
//     neighbour failed or closed. A BulkServer (started by StartServer, or
//     by ListenBulk next to a worker's own gRPC server) listens for bulk
//     connections on a port of its own, which must be reachable by the
//     previous rank.
//   - DataGRPC: pieces are messages of the gRPC stream, for networks where
//     only the gRPC port is open. gRPC-Go moves every byte through its 16 KiB
//     HTTP/2 frames, a copy into its write buffer and one out of its read
//     buffer: on loopback this path needs about twice the CPU of the bulk
//     path per byte (docs/benchmarks/allreduce.md).
//
// # Wire format
//
// ringpb/ring.proto defines the protocol; bulk.go the byte layout of bulk
// streams. Data travel as little-endian IEEE 754 values, never as repeated
// floats. On the gRPC path, the package's gRPC codec ("dsae-ring") hands a
// piece of 4 KiB or more to gRPC straight from the caller's buffer (a call
// returns only once gRPC has released it), and decodes a received piece
// straight from gRPC's receive buffers into the destination, adding as it
// goes; peers using the plain proto codec interoperate.
//
// Authentication (a token in metadata, TLS) is added through
// Config.DialOptions and the grpc.ServerOptions passed to StartServer or to
// the worker's own gRPC server. A bulk stream is authorised by its token,
// which only a peer that passed the gRPC stream's authentication receives;
// its bytes are not encrypted (use DataGRPC with TLS where the network
// between workers is not trusted).
package allreduce
