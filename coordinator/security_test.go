package coordinator

import (
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/dsae/dsae/coordinator/auth"
	"github.com/dsae/dsae/coordinator/auth/authtest"
	"github.com/dsae/dsae/coordinator/client"
	pb "github.com/dsae/dsae/coordinator/controlpb"
)

func TestRPCsWithoutTheSecretAreRefused(t *testing.T) {
	c := MakeCluster(t, 1)
	addr := c.nodes[0].GRPCAddr()
	wrong, err := auth.Config{Secret: []byte("not-the-cluster-secret-at-all")}.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]grpc.DialOption{
		"no token":    {grpc.WithTransportCredentials(insecure.NewCredentials())},
		"wrong token": wrong,
	} {
		cl := pb.NewControlClient(rawConn(t, addr, opts...))
		ctx := ctxT(t)
		_, err := cl.ListJobs(ctx, &pb.ListJobsRequest{})
		_, err2 := cl.SubmitJob(ctx, &pb.SubmitJobRequest{Spec: testSpec()})
		_, err3 := cl.Join(ctx, &pb.JoinRequest{Coordinator: &pb.Coordinator{Id: "evil", RaftAddr: "127.0.0.1:1", GrpcAddr: "127.0.0.1:2"}})
		ws, err4 := cl.WatchGeneration(ctx, &pb.WatchGenerationRequest{WorkerId: "w"})
		if err4 == nil {
			_, err4 = ws.Recv()
		}
		for i, e := range []error{err, err2, err3, err4} {
			if status.Code(e) != codes.Unauthenticated {
				t.Errorf("%s: call %d: %v, want Unauthenticated", name, i, e)
			}
		}
	}
	if n := len(c.nodes[0].fsm.State().Jobs); n != 0 {
		t.Fatalf("%d jobs submitted without the secret", n)
	}
}

func TestGossipWithWrongKeyCannotJoin(t *testing.T) {
	c := MakeCluster(t, 1)
	rogue, err := client.JoinPool(client.PoolConfig{Addr: "127.0.0.1:0", Meta: client.NodeMeta{Role: client.RoleWorker, ID: "rogue", GRPC: "x:1"},
		Secret: []byte("not-the-cluster-secret-at-all"), Gossip: testGossipTimings(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	if err := rogue.Join(c.GossipAddrs()); err == nil {
		t.Fatal("join with the wrong gossip key succeeded")
	}
	// A member with the right key does get in, so the refusal is the key's doing.
	c.JoinWorker("honest")
	WaitFor(t, waitTimeout, "the honest worker registered", func() bool {
		w := c.nodes[0].fsm.Worker("honest")
		return w != nil && w.Alive
	})
	for _, m := range c.nodes[0].pool.Members() {
		if m.ID == "rogue" {
			t.Fatal("rogue node in the pool")
		}
	}
	if len(rogue.Members()) != 1 || c.nodes[0].fsm.Worker("rogue") != nil {
		t.Fatal("rogue node learned of the pool or was registered")
	}
}

func TestRaftPeerWithWrongKeyIsRefused(t *testing.T) {
	c := MakeCluster(t, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	layer := newStreamLayer(ln, ln.Addr(), raftKey([]byte("not-the-cluster-secret-at-all")))
	trans := raft.NewNetworkTransport(layer, 1, 2*time.Second, nil)
	defer trans.Close()
	var resp raft.RequestVoteResponse
	err = trans.RequestVote("c1", raft.ServerAddress(c.nodes[0].RaftAddr()),
		&raft.RequestVoteRequest{RPCHeader: raft.RPCHeader{ID: []byte("evil"), Addr: []byte(ln.Addr().String())}, Term: 1000}, &resp)
	if err == nil {
		t.Fatal("raft request with the wrong key was answered")
	}
	if term := c.nodes[0].raft.CurrentTerm(); term >= 1000 {
		t.Fatalf("rogue vote request moved the term to %d", term)
	}
}

func TestSecretNeverLogged(t *testing.T) {
	c := MakeCluster(t, 3)
	cl := c.Client()
	runningJob(t, c, cl, "w1", "w2")
	c.Kill(c.Leader())
	c.Leader()
	logs := c.logs.String()
	if !strings.Contains(logs, "became leader") {
		t.Fatal("log capture is empty; the check below would prove nothing")
	}
	for name, s := range map[string]string{
		"secret":           string(testSecret),
		"secret (base64)":  base64.StdEncoding.EncodeToString(testSecret),
		"secret (hex)":     hex.EncodeToString(testSecret),
		"call token":       auth.Token(testSecret),
		"gossip key (hex)": hex.EncodeToString(auth.GossipKey(testSecret)),
		"gossip key (b64)": base64.StdEncoding.EncodeToString(auth.GossipKey(testSecret)),
		"raft key (hex)":   hex.EncodeToString(raftKey(testSecret)),
	} {
		if strings.Contains(logs, s) {
			t.Errorf("logs contain the %s", name)
		}
	}
}

func TestClusterWithMutualTLS(t *testing.T) {
	p := authtest.MakePKI(t)
	c := MakeClusterWith(t, 3, func(cfg *Config) {
		cfg.Auth.CertFile, cfg.Auth.KeyFile, cfg.Auth.CAFile = p.NodeCert, p.NodeKey, p.CA
	})
	// Joining, forwarding and client calls all ran over mutual TLS.
	f := c.Follower()
	if _, err := c.Client(c.nodes[f].GRPCAddr()).SubmitJob(ctxT(t), &pb.SubmitJobRequest{Spec: testSpec()}); err != nil {
		t.Fatalf("submit through a follower over mTLS: %v", err)
	}
	for name, a := range map[string]auth.Config{
		"token without a client certificate": {Secret: testSecret, CAFile: p.CA},
		"client certificate from another CA": {Secret: testSecret, CAFile: p.CA, CertFile: p.RogueCert, KeyFile: p.RogueKey},
	} {
		opts, err := a.DialOptions()
		if err != nil {
			t.Fatal(err)
		}
		_, err = pb.NewControlClient(rawConn(t, c.nodes[f].GRPCAddr(), opts...)).ListJobs(ctxT(t), &pb.ListJobsRequest{})
		if err == nil {
			t.Errorf("%s: call accepted", name)
		}
	}
	opts, err := auth.Config{CAFile: p.CA, CertFile: p.ClientCert, KeyFile: p.ClientKey}.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	_, err = pb.NewControlClient(rawConn(t, c.nodes[f].GRPCAddr(), opts...)).ListJobs(ctxT(t), &pb.ListJobsRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("client certificate without the token: %v, want Unauthenticated", err)
	}
}
