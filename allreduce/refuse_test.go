package allreduce

import (
	"context"
	"testing"
	"time"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// fakeRank0 plays rank 0 of a 2-rank ring by hand, speaking ringpb
// directly, so that it can send what a correct rank never would.
type fakeRank0 struct {
	ringpb.UnimplementedRingServer
	got chan *ringpb.Piece
}

func (f *fakeRank0) Stream(st ringpb.Ring_StreamServer) error {
	if _, err := st.Recv(); err != nil {
		return err
	}
	if err := st.Send(&ringpb.Reply{Kind: &ringpb.Reply_Accept{Accept: &ringpb.Accept{}}}); err != nil {
		return err
	}
	var tag *ringpb.Tag
	for range 2 {
		fr, err := st.Recv()
		if err != nil {
			return err
		}
		f.got <- fr.GetPiece()
		tag = fr.GetPiece().GetTag()
	}
	if err := st.Send(&ringpb.Reply{Kind: &ringpb.Reply_Ack{Ack: &ringpb.Ack{Tag: tag}}}); err != nil {
		return err
	}
	<-st.Context().Done()
	return nil
}

func pieceFrame(tag *ringpb.Tag, ringStep, chunk uint32, offset uint64, length uint64, vals []float32) *ringpb.Frame {
	return &ringpb.Frame{Kind: &ringpb.Frame_Piece{Piece: &ringpb.Piece{
		Tag: tag, Dtype: ringpb.DType_DTYPE_FLOAT32, RingStep: ringStep, Chunk: chunk,
		Offset: offset, Length: length, Data: appendLE(nil, vals),
	}}}
}

// TestWrongTagsRefusedNeverAdded: pieces of another job, another
// generation or an earlier step reach a real rank on its live stream; they
// are counted and dropped, and the result is exactly the sum of the right
// pieces. Hellos that do not match the ring are refused too.
func TestWrongTagsRefusedNeverAdded(t *testing.T) {
	tr := NewMemTransport()
	fake := &fakeRank0{got: make(chan *ringpb.Piece, 2)}
	lis, err := tr.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	fg := grpc.NewServer()
	ringpb.RegisterRingServer(fg, fake)
	go fg.Serve(lis)
	defer fg.Stop()

	srv, err := StartServer(tr, "", NewService())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	cfg := DefaultConfig()
	cfg.Job, cfg.Generation, cfg.Members, cfg.Rank = "job", 3, []string{lis.Addr().String(), srv.Addr()}, 1
	cfg.Transport, cfg.Timeout, cfg.Lanes = tr, time.Minute, 1
	cfg.DataPath = DataGRPC // the fake rank and this test speak gRPC pieces
	ring, err := NewRing(srv.Service(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()

	x0 := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	x1 := []float32{0.5, 0.25, -1, 1e-3, 7, 1e6, -3, 0, 2, 1}
	buf := append([]float32(nil), x1...)
	done := make(chan error, 1)
	go func() { done <- ring.AllReduceFloat32(context.Background(), ring.Tag(5, 1), buf) }()

	conn, err := grpc.NewClient("passthrough:///"+srv.Addr(),
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(tr.Dial))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ringpb.NewRingClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	hello := func(h *ringpb.Hello) (ringpb.Ring_StreamClient, error) {
		st, rep, err := openStream(ctx, client, h)
		if err != nil {
			return nil, err
		}
		if rep.GetAccept() == nil {
			t.Fatalf("hello answered with %v", rep)
		}
		return st, nil
	}
	if _, err := hello(&ringpb.Hello{Job: "job", Generation: 3, FromRank: 1, ToRank: 1, Ranks: 2, Lanes: 1}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("hello from the wrong rank: %v, want FailedPrecondition", err)
	}
	if _, err := hello(&ringpb.Hello{Job: "job", Generation: 3, FromRank: 0, ToRank: 1, Ranks: 3, Lanes: 1}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("hello with the wrong ring size: %v, want FailedPrecondition", err)
	}
	if _, err := hello(&ringpb.Hello{Job: "job", Generation: 2, FromRank: 0, ToRank: 1, Ranks: 2, Lanes: 1}); status.Code(err) != codes.Aborted {
		t.Fatalf("hello of an older generation: %v, want Aborted", err)
	}
	st, err := hello(&ringpb.Hello{Job: "job", Generation: 3, FromRank: 0, ToRank: 1, Ranks: 2, Lanes: 1})
	if err != nil {
		t.Fatal(err)
	}
	good := &ringpb.Tag{Job: "job", Generation: 3, Step: 5, Phase: 1}
	junk := []float32{1e30, 1e30, 1e30, 1e30, 1e30}
	for _, bad := range []*ringpb.Tag{
		{Job: "other", Generation: 3, Step: 5, Phase: 1},
		{Job: "job", Generation: 2, Step: 5, Phase: 1},
		{Job: "job", Generation: 3, Step: 5, Phase: 0},
		{Job: "job", Generation: 3, Step: 4, Phase: 9},
	} {
		if err := st.Send(pieceFrame(bad, 0, 0, 0, 10, junk)); err != nil {
			t.Fatal(err)
		}
	}
	// Ring step 0: rank 0 sends its chunk 0 (elements 0..4).
	if err := st.Send(pieceFrame(good, 0, 0, 0, 10, x0[:5])); err != nil {
		t.Fatal(err)
	}
	// Rank 1 sends chunk 1 reduced by nobody yet, then chunk 0 final.
	p := <-fake.got
	if p.GetChunk() != 1 || p.GetRingStep() != 0 {
		t.Fatalf("first piece from rank 1: chunk %d ring step %d, want chunk 1 step 0", p.GetChunk(), p.GetRingStep())
	}
	// Ring step 1: rank 0 sends chunk 1 final = x0 + x1.
	final1 := make([]float32, 5)
	for i := range final1 {
		final1[i] = x0[5+i] + x1[5+i]
	}
	if err := st.Send(pieceFrame(good, 1, 1, 5, 10, final1)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("rank 1: %v", err)
	}
	rep, err := st.Recv()
	if err != nil || rep.GetAck().GetTag().GetStep() != 5 {
		t.Fatalf("ack: %v, %v", rep, err)
	}
	for i := range buf {
		if want := x0[i] + x1[i]; buf[i] != want {
			t.Fatalf("element %d = %g, want %g", i, buf[i], want)
		}
	}
	if got := srv.Service().Refused(); got != 3+4 {
		t.Fatalf("refused %d, want 3 hellos + 4 pieces", got)
	}
	<-fake.got // rank 1's final chunk 0
	cancel()
}
