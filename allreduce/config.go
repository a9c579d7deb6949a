package allreduce

import (
	"fmt"
	"time"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc"
)

// Limits of Config.PieceBytes. The upper bound keeps a piece and its header
// below gRPC's default 4 MiB receive limit, so a worker whose gRPC server was
// built without ServerOptions still accepts every piece.
const (
	MinPieceBytes = 1 << 10
	MaxPieceBytes = 2 << 20
	MaxLanes      = 16
)

// Piece sizes used when Config.PieceBytes is 0. On the bulk path a piece is
// read in bulkReadBytes parts, so its size only sets how soon a reduced
// piece is forwarded: 2 MiB measured fastest for 16 and 64 MiB buffers on
// loopback. Through gRPC, 512 KiB (one gRPC write buffer) did.
const (
	DefaultBulkPieceBytes = 2 << 20
	DefaultGRPCPieceBytes = 512 << 10
)

// DataPath says how pieces travel between neighbours.
type DataPath uint8

const (
	// DataBulk, the default, opens a plain byte stream beside each gRPC
	// stream, authorised by a one-time token the receiver hands out on the
	// gRPC stream: TCP to the receiver's bulk port, or a Unix socket when
	// both ranks run on one host. Pieces are written from and read into the
	// caller's buffers with no copy in user space; the gRPC stream carries
	// the handshake, the acknowledgements and failures. Each worker's bulk
	// port (one per Server, next to its gRPC port) must be reachable by the
	// previous rank.
	DataBulk DataPath = iota
	// DataGRPC sends pieces as gRPC messages on the stream itself, for
	// networks where only the gRPC port is reachable. gRPC's 16 KiB HTTP/2
	// frames cost two more copies of every byte in user space.
	DataGRPC
)

func (p DataPath) String() string {
	switch p {
	case DataBulk:
		return "bulk"
	case DataGRPC:
		return "grpc"
	}
	return fmt.Sprintf("DataPath(%d)", uint8(p))
}

// ParseDataPath parses "bulk" or "grpc".
func ParseDataPath(s string) (DataPath, error) {
	switch s {
	case "bulk":
		return DataBulk, nil
	case "grpc":
		return DataGRPC, nil
	}
	return 0, fmt.Errorf("%w: data path %q: want bulk or grpc", ErrInvalidConfig, s)
}

func (p DataPath) wire() ringpb.DataPath {
	if p == DataBulk {
		return ringpb.DataPath_DATA_PATH_BULK
	}
	return ringpb.DataPath_DATA_PATH_GRPC
}

// Config describes one ring: one generation of one job, seen from one rank.
type Config struct {
	// Job and Generation name the ring. Every stream and piece carries them;
	// a Service refuses streams of a generation older than the newest one it
	// serves for the job.
	Job        string
	Generation uint64
	// Members are the gRPC addresses of the ring's ranks in ring order:
	// rank r receives from r-1 and sends to r+1 (mod len(Members)).
	Members []string
	// Rank is this process's index in Members.
	Rank int
	// Timeout bounds how long a call waits without progress (no piece sent
	// or received, or the stream to the next rank not yet open) before it
	// fails with ErrTimeout.
	Timeout time.Duration
	// PieceBytes is the largest payload of one message. Each chunk of the
	// buffer is streamed in pieces of this size so that sending, receiving
	// and adding overlap. Rounded down to a multiple of 8. 0 means the
	// default of the data path (DefaultBulkPieceBytes or
	// DefaultGRPCPieceBytes). Every member must use the same.
	PieceBytes int
	// DataPath says how pieces travel (DataBulk by default). Every member
	// must use the same.
	DataPath DataPath
	// Lanes is the number of independent streams, each on its own
	// connection, between neighbours; piece p of every chunk goes on lane
	// p mod Lanes. More lanes spread gRPC's per-connection work over more
	// goroutines and cores. 1..MaxLanes; every member must use the same.
	Lanes int
	// Transport dials the next rank. Nil means TCP.
	Transport Transport
	// DialOptions are added after the ring's own dial options (insecure
	// credentials, window and buffer sizes, the transport's dialer), so they
	// can replace them, for example with TLS credentials or per-RPC
	// authentication.
	DialOptions []grpc.DialOption
}

// pieceBytes is the piece size a valid Config uses.
func (c Config) pieceBytes() int {
	switch {
	case c.PieceBytes != 0:
		return c.PieceBytes &^ 7
	case c.DataPath == DataGRPC:
		return DefaultGRPCPieceBytes
	}
	return DefaultBulkPieceBytes
}

// DefaultConfig returns a Config with the timeout and lanes filled in;
// the caller sets Job, Generation, Members and Rank.
func DefaultConfig() Config {
	return Config{
		Timeout: 10 * time.Second,
		Lanes:   1,
	}
}

// Validate checks every field and the rules that tie them together.
func (c Config) Validate() error {
	n := len(c.Members)
	if n == 0 {
		return fmt.Errorf("%w: Members is empty", ErrInvalidConfig)
	}
	if c.Rank < 0 || c.Rank >= n {
		return fmt.Errorf("%w: Rank %d out of range [0, %d)", ErrInvalidConfig, c.Rank, n)
	}
	seen := make(map[string]int, n)
	for i, m := range c.Members {
		if m == "" {
			return fmt.Errorf("%w: Members[%d] is empty", ErrInvalidConfig, i)
		}
		if j, dup := seen[m]; dup {
			return fmt.Errorf("%w: Members[%d] and Members[%d] are both %q", ErrInvalidConfig, j, i, m)
		}
		seen[m] = i
	}
	if n > 1<<16 {
		return fmt.Errorf("%w: %d members, at most %d allowed", ErrInvalidConfig, n, 1<<16)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: Timeout %v must be positive", ErrInvalidConfig, c.Timeout)
	}
	if c.PieceBytes != 0 && (c.PieceBytes < MinPieceBytes || c.PieceBytes > MaxPieceBytes) {
		return fmt.Errorf("%w: PieceBytes %d out of range [%d, %d] (or 0 for the default)", ErrInvalidConfig, c.PieceBytes, MinPieceBytes, MaxPieceBytes)
	}
	if c.DataPath != DataBulk && c.DataPath != DataGRPC {
		return fmt.Errorf("%w: DataPath %d: want DataBulk or DataGRPC", ErrInvalidConfig, c.DataPath)
	}
	if c.Lanes < 1 || c.Lanes > MaxLanes {
		return fmt.Errorf("%w: Lanes %d out of range [1, %d]", ErrInvalidConfig, c.Lanes, MaxLanes)
	}
	return nil
}
