package coordinator

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	base := func() Config {
		c := Config{ID: "c1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0"}
		c.setDefaults()
		return c
	}
	c := base()
	if c.PeerProbeTimeout != 500*time.Millisecond || c.WatchStaleness != 3*time.Second || c.ReadyTimeout != 30*time.Second {
		t.Fatalf("defaults: probe %v, staleness %v, ready %v", c.PeerProbeTimeout, c.WatchStaleness, c.ReadyTimeout)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(*Config){
		"ready timeout":      func(c *Config) { c.ReadyTimeout = -time.Second },
		"peer probe timeout": func(c *Config) { c.PeerProbeTimeout = -time.Second },
		"watch staleness":    func(c *Config) { c.WatchStaleness = -time.Second },
	} {
		c := base()
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s negative: %v, want ErrInvalidConfig naming it", name, err)
		}
	}
}
