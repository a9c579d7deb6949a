package allreduce

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Members, base.Rank = []string{"a:1", "b:1"}, 1
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		name, want string
		edit       func(*Config)
	}{
		{"no members", "Members is empty", func(c *Config) { c.Members = nil }},
		{"rank high", "Rank 2 out of range [0, 2)", func(c *Config) { c.Rank = 2 }},
		{"rank negative", "Rank -1", func(c *Config) { c.Rank = -1 }},
		{"empty member", "Members[0] is empty", func(c *Config) { c.Members = []string{"", "b:1"} }},
		{"duplicate", `Members[0] and Members[1] are both "a:1"`, func(c *Config) { c.Members = []string{"a:1", "a:1"} }},
		{"timeout", "Timeout 0s must be positive", func(c *Config) { c.Timeout = 0 }},
		{"piece small", "PieceBytes 10 out of range", func(c *Config) { c.PieceBytes = 10 }},
		{"piece large", "PieceBytes 4194304 out of range", func(c *Config) { c.PieceBytes = 4 << 20 }},
		{"no lanes", "Lanes 0 out of range [1, 16]", func(c *Config) { c.Lanes = 0 }},
		{"data path", "DataPath 7: want DataBulk or DataGRPC", func(c *Config) { c.DataPath = 7 }},
	}
	for _, tc := range cases {
		cfg := base
		cfg.Members = append([]string(nil), base.Members...)
		tc.edit(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want ErrInvalidConfig containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewRing(NewService(), Config{Members: []string{"x"}, Timeout: time.Second}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewRing with Lanes 0: %v", err)
	}
	for _, tc := range []struct {
		cfg  Config
		want int
	}{
		{Config{}, DefaultBulkPieceBytes},
		{Config{DataPath: DataGRPC}, DefaultGRPCPieceBytes},
		{Config{PieceBytes: 4100}, 4096},
		{Config{PieceBytes: 4100, DataPath: DataGRPC}, 4096},
	} {
		if got := tc.cfg.pieceBytes(); got != tc.want {
			t.Errorf("pieceBytes of %+v = %d, want %d", tc.cfg, got, tc.want)
		}
	}
	for _, s := range []string{"bulk", "grpc"} {
		p, err := ParseDataPath(s)
		if err != nil || p.String() != s {
			t.Errorf("ParseDataPath(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseDataPath("tcp"); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `"tcp"`) {
		t.Errorf("ParseDataPath(tcp): %v", err)
	}
}
