package allreduce

import (
	"fmt"
	"time"

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
	// and adding overlap. Rounded down to a multiple of 8.
	PieceBytes int
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

// DefaultConfig returns a Config with the timeout and piece size filled in;
// the caller sets Job, Generation, Members and Rank.
func DefaultConfig() Config {
	return Config{
		Timeout:    10 * time.Second,
		PieceBytes: 512 << 10,
		Lanes:      1,
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
	if c.PieceBytes < MinPieceBytes || c.PieceBytes > MaxPieceBytes {
		return fmt.Errorf("%w: PieceBytes %d out of range [%d, %d]", ErrInvalidConfig, c.PieceBytes, MinPieceBytes, MaxPieceBytes)
	}
	if c.Lanes < 1 || c.Lanes > MaxLanes {
		return fmt.Errorf("%w: Lanes %d out of range [1, %d]", ErrInvalidConfig, c.Lanes, MaxLanes)
	}
	return nil
}
