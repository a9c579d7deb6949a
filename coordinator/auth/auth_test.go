package auth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dsae/dsae/coordinator/auth/authtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("correct horse battery staple 42")

// serve starts a gRPC server with the health service under cfg.
func serve(t *testing.T, cfg Config) string {
	t.Helper()
	opts, err := cfg.ServerOptions()
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// call makes one unary and one streaming call with cfg's credentials.
func call(t *testing.T, addr string, cfg Config) (unary, stream error) {
	t.Helper()
	opts, err := cfg.DialOptions()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := healthpb.NewHealthClient(conn)
	_, unary = h.Check(ctx, &healthpb.HealthCheckRequest{})
	ws, err := h.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = ws.Recv()
	}
	return unary, err
}

func TestTokenAuth(t *testing.T) {
	addr := serve(t, Config{Secret: secret})
	if u, s := call(t, addr, Config{Secret: secret}); u != nil || s != nil {
		t.Fatalf("right secret refused: %v / %v", u, s)
	}
	for name, cfg := range map[string]Config{"no token": {}, "wrong token": {Secret: []byte("another secret of enough length")}} {
		u, s := call(t, addr, cfg)
		if status.Code(u) != codes.Unauthenticated || status.Code(s) != codes.Unauthenticated {
			t.Errorf("%s: unary %v, stream %v; want Unauthenticated", name, u, s)
		}
	}
}

func TestPublicMethods(t *testing.T) {
	addr := serve(t, Config{Secret: secret, Public: []string{healthpb.Health_Check_FullMethodName}})
	u, s := call(t, addr, Config{})
	if u != nil || status.Code(s) != codes.Unauthenticated {
		t.Fatalf("public check %v, private watch %v", u, s)
	}
}

func TestDerivedKeys(t *testing.T) {
	g, tok := GossipKey(secret), Token(secret)
	if len(g) != 32 || len(tok) != 64 {
		t.Fatalf("gossip key %d bytes, token %d chars", len(g), len(tok))
	}
	if strings.Contains(tok, string(secret)) || fmt.Sprintf("%x", g) == tok {
		t.Fatal("keys not independent of each other or of the secret")
	}
	if GossipKey(nil) != nil || Token(nil) != "" {
		t.Fatal("empty secret must disable keys")
	}
	cfg := Config{Secret: secret}
	for _, s := range []string{cfg.String(), fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg), fmt.Sprint(struct{ A Config }{cfg})} {
		if strings.Contains(s, string(secret)) || strings.Contains(s, fmt.Sprint(secret)) {
			t.Fatalf("secret printed: %s", s)
		}
	}
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "s")
	os.WriteFile(f, []byte("  "+string(secret)+"\n"), 0o600)
	got, err := LoadSecret(f)
	if err != nil || string(got) != string(secret) {
		t.Fatalf("%q %v", got, err)
	}
	os.WriteFile(f, []byte("short"), 0o600)
	if _, err := LoadSecret(f); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := LoadSecret(filepath.Join(dir, "missing")); !errors.Is(err, ErrBadSecret) {
		t.Fatalf("missing file: %v", err)
	}
	t.Setenv(EnvSecret, string(secret))
	if got, err := LoadSecret(""); err != nil || string(got) != string(secret) {
		t.Fatalf("env: %q %v", got, err)
	}
}

func TestTLSAndMutualTLS(t *testing.T) {
	p := authtest.MakePKI(t)
	// Server-side TLS only: the client verifies the server with the CA.
	addr := serve(t, Config{Secret: secret, CertFile: p.NodeCert, KeyFile: p.NodeKey})
	if u, s := call(t, addr, Config{Secret: secret, CAFile: p.CA}); u != nil || s != nil {
		t.Fatalf("TLS with token refused: %v / %v", u, s)
	}
	if u, _ := call(t, addr, Config{CAFile: p.CA}); status.Code(u) != codes.Unauthenticated {
		t.Fatalf("TLS without token: %v", u)
	}
	// Mutual TLS: a client certificate from the CA is required.
	addr = serve(t, Config{Secret: secret, CertFile: p.NodeCert, KeyFile: p.NodeKey, CAFile: p.CA})
	if u, s := call(t, addr, Config{Secret: secret, CertFile: p.ClientCert, KeyFile: p.ClientKey, CAFile: p.CA}); u != nil || s != nil {
		t.Fatalf("mTLS refused: %v / %v", u, s)
	}
	for name, cfg := range map[string]Config{
		"no client cert":    {Secret: secret, CAFile: p.CA},
		"foreign client CA": {Secret: secret, CertFile: p.RogueCert, KeyFile: p.RogueKey, CAFile: p.CA},
	} {
		if u, _ := call(t, addr, cfg); u == nil {
			t.Errorf("%s: call accepted", name)
		}
	}
	if _, err := (Config{CertFile: p.NodeCert}).ServerOptions(); !errors.Is(err, ErrBadTLS) {
		t.Fatalf("cert without key: %v", err)
	}
	if _, err := (Config{CAFile: filepath.Join(p.Dir, "nope")}).DialOptions(); !errors.Is(err, ErrBadTLS) {
		t.Fatalf("missing CA: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want error
	}{
		{Config{}, nil},
		{Config{Secret: []byte("0123456789abcdef")}, nil},
		{Config{Secret: []byte("short")}, ErrBadSecret},
		{Config{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}, nil},
		{Config{CAFile: "ca.pem"}, nil}, // a client verifying servers
		{Config{CertFile: "c.pem"}, ErrBadTLS},
		{Config{KeyFile: "k.pem"}, ErrBadTLS},
	} {
		if err := tc.c.Validate(); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%v (cert %q key %q): %v, want %v", tc.c, tc.c.CertFile, tc.c.KeyFile, err, tc.want)
		}
	}
}
