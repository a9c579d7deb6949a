package allreduce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestBulkHeaderRoundTrip(t *testing.T) {
	h := pieceHeader{
		dtype: ringpb.DType_DTYPE_FLOAT64, phase: 7, ringStep: 13, chunk: 65535,
		generation: 1<<40 + 3, step: 1<<63 + 5, offset: 1<<33 + 1, length: 1<<34 + 9, dataLen: MaxPieceBytes,
	}
	var b [bulkHeaderLen]byte
	putBulkHeader(&b, &h)
	var got pieceHeader
	if err := parseBulkHeader(b[:], &got); err != nil {
		t.Fatal(err)
	}
	if got.String() != h.String() || got.generation != h.generation || got.step != h.step || got.phase != h.phase {
		t.Fatalf("round trip: got %+v, want %+v", got, h)
	}
	bad := b
	bad[0] ^= 1
	if err := parseBulkHeader(bad[:], &got); err == nil || !strings.Contains(err.Error(), "starts with") {
		t.Fatalf("wrong magic: %v", err)
	}
	h.dataLen = MaxPieceBytes + 8
	putBulkHeader(&b, &h)
	if err := parseBulkHeader(b[:], &got); err == nil || !strings.Contains(err.Error(), "more than the largest piece") {
		t.Fatalf("oversized piece: %v", err)
	}
	var a [bulkAckLen]byte
	putBulkAck(&a, Tag{Step: 1<<62 + 1, Phase: 9})
	if step, phase, err := parseBulkAck(a[:]); err != nil || step != 1<<62+1 || phase != 9 {
		t.Fatalf("ack round trip: %d %d %v", step, phase, err)
	}
}

func TestBulkDialAddr(t *testing.T) {
	for _, tc := range []struct{ adv, member, want string }{
		{"127.0.0.1:5000", "10.0.0.1:7000", "127.0.0.1:5000"},
		{"0.0.0.0:5000", "10.0.0.1:7000", "10.0.0.1:5000"},
		{"[::]:5000", "worker-3:7000", "worker-3:5000"},
		{":5000", "worker-3:7000", "worker-3:5000"},
		{"mem-4", "mem-1", "mem-4"},
	} {
		if got := bulkDialAddr(tc.adv, tc.member); got != tc.want {
			t.Errorf("bulkDialAddr(%q, %q) = %q, want %q", tc.adv, tc.member, got, tc.want)
		}
	}
}

// fakeBulkRank0 plays the receiving side of rank 0 in a 2-rank bulk ring:
// it accepts rank 1's stream, offers its own bulk listener, reads the two
// pieces rank 1 sends in a call and acknowledges them.
type fakeBulkRank0 struct {
	ringpb.UnimplementedRingServer
	bulk net.Listener
	got  chan pieceHeader
}

func (f *fakeBulkRank0) Stream(st ringpb.Ring_StreamServer) error {
	fr, err := st.Recv()
	if err != nil {
		return err
	}
	if fr.GetHello().GetDataPath() != ringpb.DataPath_DATA_PATH_BULK {
		return status.Error(codes.FailedPrecondition, "want a bulk hello")
	}
	token := bytes.Repeat([]byte{7}, bulkTokenLen)
	offer := &ringpb.Bulk{Token: token, TcpAddr: f.bulk.Addr().String()}
	if err := st.Send(&ringpb.Reply{Kind: &ringpb.Reply_Accept{Accept: &ringpb.Accept{Bulk: offer}}}); err != nil {
		return err
	}
	c, err := f.bulk.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	pre := make([]byte, len(bulkPreamble)+bulkTokenLen)
	if _, err := io.ReadFull(c, pre); err != nil || !bytes.Equal(pre[len(bulkPreamble):], token) {
		return status.Error(codes.PermissionDenied, "bad bulk handshake")
	}
	c.Write([]byte{bulkOK})
	var tag Tag
	for range 2 {
		var b [bulkHeaderLen]byte
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return err
		}
		var h pieceHeader
		if err := parseBulkHeader(b[:], &h); err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, c, int64(h.dataLen)); err != nil {
			return err
		}
		tag = Tag{Step: h.step, Phase: h.phase}
		f.got <- h
	}
	var a [bulkAckLen]byte
	putBulkAck(&a, tag)
	c.Write(a[:])
	<-st.Context().Done()
	return nil
}

// bulkPiece encodes one piece (header and data) for a bulk stream.
func bulkPiece(gen, step uint64, phase uint32, ringStep, chunk int, offset, length int, vals []float32) []byte {
	h := pieceHeader{
		dtype: ringpb.DType_DTYPE_FLOAT32, generation: gen, step: step, phase: phase,
		ringStep: uint64(ringStep), chunk: uint64(chunk), offset: uint64(offset), length: uint64(length),
		dataLen: 4 * len(vals),
	}
	var b [bulkHeaderLen]byte
	putBulkHeader(&b, &h)
	return appendLE(b[:], vals)
}

// bulkRank1 is a real rank 1 of a 2-rank bulk ring whose rank 0 is played
// by the test: rank 1 sends to a fakeBulkRank0, and the test opens rank 0's
// stream to rank 1 by hand.
type bulkRank1 struct {
	srv    *Server
	ring   *Ring
	fake   *fakeBulkRank0
	client ringpb.RingClient
}

func startBulkRank1(t *testing.T) *bulkRank1 {
	t.Helper()
	tr := TCP()
	lis, err := tr.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bl, err := tr.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeBulkRank0{bulk: bl, got: make(chan pieceHeader, 2)}
	fg := grpc.NewServer()
	ringpb.RegisterRingServer(fg, fake)
	go fg.Serve(lis)
	t.Cleanup(func() { fg.Stop(); bl.Close() })

	srv, err := StartServer(tr, "127.0.0.1:0", NewService(WithUnixSockets("")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop() })
	cfg := DefaultConfig()
	cfg.Job, cfg.Generation, cfg.Members, cfg.Rank = "job", 3, []string{lis.Addr().String(), srv.Addr()}, 1
	cfg.Timeout, cfg.PieceBytes = time.Minute, MinPieceBytes
	ring, err := NewRing(srv.Service(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ring.Close() })
	conn, err := grpc.NewClient("passthrough:///"+srv.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &bulkRank1{srv: srv, ring: ring, fake: fake, client: ringpb.NewRingClient(conn)}
}

// hello opens a stream to rank 1 as rank 0 and returns the bulk offer.
func (b *bulkRank1) hello(ctx context.Context, h *ringpb.Hello) (*ringpb.Bulk, error) {
	_, rep, err := openStream(ctx, b.client, h)
	if err != nil {
		return nil, err
	}
	return rep.GetAccept().GetBulk(), nil
}

func goodHello() *ringpb.Hello {
	return &ringpb.Hello{Job: "job", Generation: 3, FromRank: 0, ToRank: 1, Ranks: 2, Lanes: 1,
		DataPath: ringpb.DataPath_DATA_PATH_BULK, PieceBytes: MinPieceBytes}
}

// dialBulkAs connects to an offer's TCP address and writes pre.
func dialBulkAs(t *testing.T, offer *ringpb.Bulk, pre []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", offer.GetTcpAddr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(pre); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBulkRefusals: on the bulk path, hellos that do not match the ring,
// connections with a wrong preamble or token, and pieces of another
// generation or an earlier call are refused and counted; the refused
// pieces' data are skipped, never added, and the result is exactly the sum
// of the right pieces.
func TestBulkRefusals(t *testing.T) {
	b := startBulkRank1(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	x0 := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	x1 := []float32{0.5, 0.25, -1, 1e-3, 7, 1e6, -3, 0, 2, 1}
	buf := append([]float32(nil), x1...)
	done := make(chan error, 1)
	go func() { done <- b.ring.AllReduceFloat32(context.Background(), b.ring.Tag(5, 1), buf) }()

	wrongPath := goodHello()
	wrongPath.DataPath = ringpb.DataPath_DATA_PATH_GRPC
	if _, err := b.hello(ctx, wrongPath); status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "same DataPath") {
		t.Fatalf("hello for the gRPC data path: %v, want FailedPrecondition naming DataPath", err)
	}
	wrongPiece := goodHello()
	wrongPiece.PieceBytes = 2 * MinPieceBytes
	if _, err := b.hello(ctx, wrongPiece); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("hello with another piece size: %v, want FailedPrecondition", err)
	}
	refusedBefore := b.srv.Service().Refused()
	offer, err := b.hello(ctx, goodHello())
	if err != nil {
		t.Fatal(err)
	}
	if offer == nil || len(offer.GetToken()) != bulkTokenLen {
		t.Fatalf("accept carried no usable bulk offer: %v", offer)
	}

	// A wrong preamble and a wrong token: the listener closes the
	// connection without answering.
	wrongToken := append([]byte(nil), offer.GetToken()...)
	wrongToken[0] ^= 0xff
	for name, pre := range map[string][]byte{
		"wrong preamble": append([]byte("dsae-bulk/9\n"), offer.GetToken()...),
		"wrong token":    append([]byte(bulkPreamble), wrongToken...),
	} {
		c := dialBulkAs(t, offer, pre)
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("%s: read %d bytes, %v; want the connection closed", name, n, err)
		}
		c.Close()
	}

	c := dialBulkAs(t, offer, append([]byte(bulkPreamble), offer.GetToken()...))
	defer c.Close()
	var ok [1]byte
	if _, err := io.ReadFull(c, ok[:]); err != nil || ok[0] != bulkOK {
		t.Fatalf("handshake with the right token: %q, %v", ok[0], err)
	}
	junk := []float32{1e30, 1e30, 1e30, 1e30, 1e30}
	var stream []byte
	stream = append(stream, bulkPiece(2, 5, 1, 0, 0, 0, 10, junk)...) // older generation
	stream = append(stream, bulkPiece(3, 5, 0, 0, 0, 0, 10, junk)...) // earlier phase
	stream = append(stream, bulkPiece(3, 4, 9, 0, 0, 0, 10, junk)...) // earlier step
	// Ring step 0: rank 0 sends its chunk 0 (elements 0..4).
	stream = append(stream, bulkPiece(3, 5, 1, 0, 0, 0, 10, x0[:5])...)
	if _, err := c.Write(stream); err != nil {
		t.Fatal(err)
	}
	// Rank 1 sends its chunk 1 (step 0), then the sum of chunk 0 (step 1).
	for range 2 {
		select {
		case <-b.fake.got:
		case err := <-done:
			t.Fatalf("rank 1 returned early: %v", err)
		}
	}
	// Ring step 1: the final sums of chunk 1, as rank 0 would compute them.
	final1 := make([]float32, 5)
	for i := range final1 {
		final1[i] = x1[5+i] + x0[5+i]
	}
	if _, err := c.Write(bulkPiece(3, 5, 1, 1, 1, 5, 10, final1)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var a [bulkAckLen]byte
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(c, a[:]); err != nil {
		t.Fatal(err)
	}
	if step, phase, err := parseBulkAck(a[:]); err != nil || step != 5 || phase != 1 {
		t.Fatalf("acknowledgement: step %d phase %d, %v; want step 5 phase 1", step, phase, err)
	}
	for i := range buf {
		want := x0[i] + x1[i]
		if i >= 5 {
			want = final1[i-5]
		}
		if buf[i] != want {
			t.Fatalf("element %d: got %g, want %g (a refused piece was added?)", i, buf[i], want)
		}
	}
	// Two hellos, a wrong preamble, a wrong token and three pieces.
	if got := b.srv.Service().Refused() - refusedBefore; got != 5 {
		t.Fatalf("refused %d since the bad hellos, want 5 (preamble, token, three pieces)", got)
	}
}

// TestBulkProtocolViolation: a piece at the wrong offset on the bulk stream
// fails the call with ErrProtocol instead of being added.
func TestBulkProtocolViolation(t *testing.T) {
	b := startBulkRank1(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	buf := make([]float32, 10)
	done := make(chan error, 1)
	go func() { done <- b.ring.AllReduceFloat32(context.Background(), b.ring.Tag(1, 0), buf) }()
	offer, err := b.hello(ctx, goodHello())
	if err != nil {
		t.Fatal(err)
	}
	c := dialBulkAs(t, offer, append([]byte(bulkPreamble), offer.GetToken()...))
	defer c.Close()
	if _, err := c.Write(bulkPiece(3, 1, 0, 0, 0, 2, 10, []float32{1, 2, 3, 4, 5})); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), "offset 2") {
		t.Fatalf("misplaced piece: got %v, want ErrProtocol naming offset 2", err)
	}
	for i, v := range buf {
		if v != 0 && i < 5 {
			t.Fatalf("element %d = %g: the misplaced piece was added", i, v)
		}
	}
}

// TestBulkFallsBackToTCP: when the next rank's Unix socket cannot be
// reached (as from another container), the bulk stream goes over TCP.
func TestBulkFallsBackToTCP(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, TCP(), DataBulk, 2, WithUnixSockets(dir))
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 2 {
		t.Fatalf("want 2 Unix sockets in %s, got %v (%v)", dir, entries, err)
	}
	for _, e := range entries {
		os.Remove(dir + "/" + e.Name())
	}
	reduceOverTCP(t, c.newRings(1, nil), 21, 3001)
}

// reduceOverTCP runs one all-reduce of l elements on rings and checks the
// sums and that the bulk streams went over TCP.
func reduceOverTCP(t *testing.T, rings []*Ring, seed uint64, l int) {
	t.Helper()
	in := inputs[float32](seed, len(rings), l)
	out, err := allReduceAll(context.Background(), rings, 1, 0, in)
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, in, out)
	checkDataPath(t, transportCase{name: "tcp/bulk-tcp", path: DataBulk}, rings)
}

// TestDataPathMismatch: a rank on the bulk path and one on the gRPC path
// cannot form a ring; both calls fail with an error naming the setting.
func TestDataPathMismatch(t *testing.T) {
	c := startServers(t, NewMemTransport(), 2)
	rings := c.newRings(1, func(cfg *Config) {
		if cfg.Rank == 1 {
			cfg.DataPath = DataGRPC
		}
	})
	_, err := allReduceAll(context.Background(), rings, 1, 0, inputs[float32](22, 2, 100))
	if err == nil || !strings.Contains(err.Error(), "DataPath") {
		t.Fatalf("got %v, want an error naming DataPath", err)
	}
}

// TestBulkNeedsAServer: a bulk ring on a Service that no Server serves
// (registered on some other gRPC server) is a configuration error.
func TestBulkNeedsAServer(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Job, cfg.Generation, cfg.Members, cfg.Rank = "job", 1, []string{"a:1", "b:1"}, 0
	_, err := NewRing(NewService(), cfg)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "DataGRPC") {
		t.Fatalf("got %v, want ErrInvalidConfig suggesting DataGRPC", err)
	}
	cfg.DataPath = DataGRPC
	r, err := NewRing(NewService(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
}

// TestStaleSocketsRemoved: a Server removes the Unix sockets of dsae
// processes that no longer run, and only those.
func TestStaleSocketsRemoved(t *testing.T) {
	dir := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	makeSocket := func(name string) string {
		path := filepath.Join(dir, name)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		return path
	}
	stale := makeSocket(fmt.Sprintf("%s%d-1.sock", unixSocketPrefix, dead.Process.Pid))
	live := makeSocket(fmt.Sprintf("%s%d-999.sock", unixSocketPrefix, os.Getpid()))
	other := makeSocket("other.sock")
	s, err := StartServer(TCP(), "127.0.0.1:0", NewService(WithUnixSockets(dir)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket of exited process %d still there: %v", dead.Process.Pid, err)
	}
	for _, p := range []string{live, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

// TestUnixSocketOptional: a Unix socket directory that cannot hold a
// socket leaves ranks on TCP instead of failing the server.
func TestUnixSocketOptional(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	c := startCluster(t, TCP(), DataBulk, 2, WithUnixSockets(dir))
	reduceOverTCP(t, c.newRings(1, nil), 23, 999)
}

// TestListenBulkWithOwnGRPCServer: a worker that registers the Service on
// a gRPC server of its own (as one serving other services too) runs bulk
// rings through ListenBulk; a second BulkServer for the same Service is
// refused, and a stopped one makes room for a new one.
func TestListenBulkWithOwnGRPCServer(t *testing.T) {
	const n = 3
	addrs := make([]string, n)
	svcs := make([]*Service, n)
	for r := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		svcs[r] = NewService(WithUnixSockets(""))
		g := grpc.NewServer(ServerOptions()...)
		svcs[r].Register(g)
		go g.Serve(lis)
		t.Cleanup(g.Stop)
		bs, err := ListenBulk(TCP(), lis.Addr().String(), svcs[r])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bs.Stop)
		if host, _, _ := net.SplitHostPort(bs.Addr()); host != "127.0.0.1" || bs.UnixPath() != "" {
			t.Fatalf("bulk server at %q (Unix %q), want 127.0.0.1 and no Unix socket", bs.Addr(), bs.UnixPath())
		}
		addrs[r] = lis.Addr().String()
	}
	if _, err := ListenBulk(TCP(), "127.0.0.1:0", svcs[0]); err == nil || !strings.Contains(err.Error(), "already has a BulkServer") {
		t.Fatalf("second BulkServer: %v", err)
	}
	rings := make([]*Ring, n)
	for r := range n {
		cfg := DefaultConfig()
		cfg.Job, cfg.Generation, cfg.Members, cfg.Rank = "job", 1, addrs, r
		ring, err := NewRing(svcs[r], cfg)
		if err != nil {
			t.Fatal(err)
		}
		rings[r] = ring
	}
	defer closeAll(rings)
	reduceOverTCP(t, rings, 24, 100_003)

	extra := NewService()
	bs, err := ListenBulk(NewMemTransport(), "", extra)
	if err != nil {
		t.Fatal(err)
	}
	bs.Stop()
	bs2, err := ListenBulk(NewMemTransport(), "", extra)
	if err != nil {
		t.Fatalf("BulkServer after the first stopped: %v", err)
	}
	bs2.Stop()
}
