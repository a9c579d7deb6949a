package worker

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/dsae/dsae/worker/transferpb"
)

// serveTransfer serves srv over an in-memory connection and returns a client.
func serveTransfer(t *testing.T, srv transferpb.StateTransferServer) transferpb.StateTransferClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	g := grpc.NewServer()
	transferpb.RegisterStateTransferServer(g, srv)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient("passthrough:///mem", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return transferpb.NewStateTransferClient(conn)
}

func trainedSnapshot(t *testing.T, steps int64) *Snapshot {
	t.Helper()
	tr, _, _ := newKLTrainer(t, steps, 0, nil)
	runAll(t, tr)
	s, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A member that is behind receives exactly the donor's state, history
// included, in several parts; asking for another step or checksum is refused.
func TestStateTransfer(t *testing.T) {
	snap := trainedSnapshot(t, 3)
	srv := newTransferServer()
	history := []byte(`[{"step":3,"loss":1.5}]`)
	srv.hold(&heldState{job: "job-1", snap: snap, sum: snap.Checksum(), history: history})
	cl := serveTransfer(t, srv)
	ctx := context.Background()

	got, hist, err := fetchState(ctx, cl, "job-1", 3, snap.Checksum())
	if err != nil {
		t.Fatal(err)
	}
	if got.Checksum() != snap.Checksum() || !slices.Equal(got.Tracker, snap.Tracker) || string(hist) != string(history) {
		t.Fatal("received state differs from the donor's")
	}
	if _, _, err := fetchState(ctx, cl, "job-1", 4, snap.Checksum()); !isCode(err, codes.FailedPrecondition) {
		t.Fatalf("other step: err = %v, want FailedPrecondition", err)
	}
	if _, _, err := fetchState(ctx, cl, "job-1", 3, snap.Checksum()^1); !isCode(err, codes.FailedPrecondition) {
		t.Fatalf("other checksum: err = %v, want FailedPrecondition", err)
	}
	if _, _, err := fetchState(ctx, cl, "job-2", 3, 0); !isCode(err, codes.NotFound) {
		t.Fatalf("unknown job: err = %v, want NotFound", err)
	}
}

func isCode(err error, c codes.Code) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if s, ok := status.FromError(e); ok && s.Code() == c {
			return true
		}
	}
	return false
}

// lyingDonor sends state whose bytes do not match the checksum it claims.
type lyingDonor struct {
	transferpb.UnimplementedStateTransferServer
	inner *transferServer
}

func (l lyingDonor) Fetch(req *transferpb.FetchRequest, stream grpc.ServerStreamingServer[transferpb.StatePart]) error {
	return l.inner.Fetch(req, corrupting{stream})
}

type corrupting struct {
	grpc.ServerStreamingServer[transferpb.StatePart]
}

func (c corrupting) Send(p *transferpb.StatePart) error {
	if len(p.Data) > 8 {
		p.Data = slices.Clone(p.Data)
		p.Data[7] ^= 0x40
	}
	return c.ServerStreamingServer.Send(p)
}

// State that does not hash to the checksum the generation names is refused.
func TestStateTransferRefusesCorruptState(t *testing.T) {
	snap := trainedSnapshot(t, 2)
	inner := newTransferServer()
	inner.hold(&heldState{job: "j", snap: snap, sum: snap.Checksum()})
	cl := serveTransfer(t, lyingDonor{inner: inner})
	if _, _, err := fetchState(context.Background(), cl, "j", 2, snap.Checksum()); !errors.Is(err, errTransfer) {
		t.Fatalf("corrupt state: err = %v, want errTransfer", err)
	}
}
