package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// EnvSecret is the environment variable that holds the cluster secret when
// no secret file is given.
const EnvSecret = "DSAE_CLUSTER_SECRET"

// tokenKey is the gRPC metadata key that carries the call token.
const tokenKey = "dsae-token"

// MinSecretLen is the shortest secret accepted.
const MinSecretLen = 16

// Sentinel errors of the package.
var (
	// ErrBadSecret marks a secret that is missing where required or too short.
	ErrBadSecret = errors.New("bad cluster secret")
	// ErrBadTLS marks unreadable or inconsistent certificate settings.
	ErrBadTLS = errors.New("bad TLS configuration")
)

// Config is the security configuration of one process. The zero value is an
// open cluster: no token, no encryption. Use it only on a trusted network.
type Config struct {
	Secret []byte // cluster secret; empty disables authentication
	// CertFile and KeyFile enable TLS with this certificate (served by
	// servers, presented by clients when CAFile is set).
	CertFile, KeyFile string
	// CAFile, when set, verifies peers: servers require client certificates
	// signed by it (mutual TLS) and clients verify servers against it.
	CAFile string
	// ServerName overrides the name clients verify in server certificates.
	ServerName string
	// Public lists full method names ("/pkg.Service/Method") that need no
	// token, such as the gRPC health check.
	Public []string
}

// Validate checks the rules every role shares, without reading a file: a
// secret is empty or at least MinSecretLen bytes (ErrBadSecret), and
// CertFile and KeyFile are set together (ErrBadTLS). Whether the files
// load is found by ServerOptions and DialOptions.
func (c Config) Validate() error {
	if err := checkSecret(c.Secret); err != nil {
		return err
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("%w: a certificate needs both a cert file and a key file", ErrBadTLS)
	}
	return nil
}

// String describes the configuration without the secret.
func (c Config) String() string {
	return fmt.Sprintf("auth{secret:%v tls:%v mtls:%v}", len(c.Secret) > 0, c.CertFile != "", c.CAFile != "")
}

// GoString keeps the secret out of %#v.
func (c Config) GoString() string { return c.String() }

// LogValue keeps the secret out of structured logs.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// LoadSecret reads the cluster secret from file (surrounding white space
// trimmed) or, when file is empty, from $DSAE_CLUSTER_SECRET. It returns nil
// when neither is set; a set secret shorter than MinSecretLen is an error.
func LoadSecret(file string) ([]byte, error) {
	var s []byte
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSecret, err)
		}
		s = []byte(strings.TrimSpace(string(b)))
		if len(s) == 0 {
			return nil, fmt.Errorf("%w: %s is empty", ErrBadSecret, file)
		}
	} else if v, ok := os.LookupEnv(EnvSecret); ok {
		s = []byte(strings.TrimSpace(v))
	}
	if err := checkSecret(s); err != nil {
		return nil, err
	}
	return s, nil
}

// checkSecret refuses a set secret shorter than MinSecretLen.
func checkSecret(s []byte) error {
	if len(s) > 0 && len(s) < MinSecretLen {
		return fmt.Errorf("%w: %d bytes, want at least %d", ErrBadSecret, len(s), MinSecretLen)
	}
	return nil
}

// DeriveKey returns a 32-byte key for one purpose (label); each purpose
// gets an independent key, and no key reveals the secret.
func DeriveKey(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("dsae/" + label))
	return m.Sum(nil)
}

// GossipKey returns the 32-byte AES-256-GCM key of memberlist gossip, or nil
// when the secret is empty.
func GossipKey(secret []byte) []byte {
	if len(secret) == 0 {
		return nil
	}
	return DeriveKey(secret, "gossip/v1")
}

// Token returns the call token derived from the secret (hex), or "" when the
// secret is empty. The secret itself never travels.
func Token(secret []byte) string {
	if len(secret) == 0 {
		return ""
	}
	return hex.EncodeToString(DeriveKey(secret, "grpc-token/v1"))
}

// ServerOptions returns the options of a gRPC server that refuses, with
// codes.Unauthenticated, every call without the cluster token (except
// c.Public methods), and serves TLS when a certificate is set.
func (c Config) ServerOptions() ([]grpc.ServerOption, error) {
	var opts []grpc.ServerOption
	if c.CertFile != "" || c.KeyFile != "" {
		tc, err := c.tlsConfig(true)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	if tok := Token(c.Secret); tok != "" {
		check := c.checker(tok)
		opts = append(opts,
			grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				if err := check(ctx, info.FullMethod); err != nil {
					return nil, err
				}
				return h(ctx, req)
			}),
			grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				if err := check(ss.Context(), info.FullMethod); err != nil {
					return err
				}
				return h(srv, ss)
			}))
	}
	return opts, nil
}

func (c Config) checker(tok string) func(context.Context, string) error {
	public := map[string]bool{}
	for _, m := range c.Public {
		public[m] = true
	}
	want := []byte(tok)
	return func(ctx context.Context, method string) error {
		if public[method] {
			return nil
		}
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get(tokenKey)
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), want) != 1 {
			return status.Error(codes.Unauthenticated, "missing or wrong cluster token")
		}
		return nil
	}
}

// DialOptions returns the options of a gRPC client that presents the cluster
// token on every call and speaks TLS when the config has a certificate or a
// CA.
func (c Config) DialOptions() ([]grpc.DialOption, error) {
	var opts []grpc.DialOption
	secure := c.CAFile != "" || c.CertFile != ""
	if secure {
		tc, err := c.tlsConfig(false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if tok := Token(c.Secret); tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds{tok: tok, secure: secure}))
	}
	return opts, nil
}

type tokenCreds struct {
	tok    string
	secure bool
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{tokenKey: t.tok}, nil
}

func (t tokenCreds) RequireTransportSecurity() bool { return t.secure }

func (c Config) tlsConfig(server bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CertFile != "" || c.KeyFile != "" {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, fmt.Errorf("%w: a certificate needs both a cert file and a key file", ErrBadTLS)
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTLS, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadTLS, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s holds no PEM certificate", ErrBadTLS, c.CAFile)
		}
		if server {
			tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		} else {
			tc.RootCAs = pool
		}
	}
	if server && len(tc.Certificates) == 0 {
		return nil, fmt.Errorf("%w: a TLS server needs a certificate", ErrBadTLS)
	}
	return tc, nil
}
