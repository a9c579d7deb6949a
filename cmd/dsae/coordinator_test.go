package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/dsae/dsae/coordinator"
)

// TestCoordinatorFlagDefaults: the flags of `dsae coordinator` default to
// coordinator.DefaultConfig, and the flags that set two fields derive the
// second from it.
func TestCoordinatorFlagDefaults(t *testing.T) {
	parse := func(args ...string) coordinator.Config {
		t.Helper()
		fs := pflag.NewFlagSet("coordinator", pflag.ContinueOnError)
		cf := addCoordinatorFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return cf.config()
	}
	def := coordinator.DefaultConfig()
	if got := parse(); !reflect.DeepEqual(got, def) {
		t.Fatalf("flag defaults give\n%+v\nwant coordinator.DefaultConfig\n%+v", got, def)
	}
	if c := parse("--id", "c1", "--data-dir", t.TempDir()); c.Validate() != nil {
		t.Fatalf("defaults with --id and --data-dir: %v", c.Validate())
	}
	// The command registers these flags, with these defaults.
	f := newCoordinatorCmd().Flags()
	for name, want := range map[string]string{"raft-addr": def.RaftAddr, "grpc-addr": def.GRPCAddr, "gossip-addr": def.GossipAddr,
		"ready-timeout": def.ReadyTimeout.String(), "raft-timeout": def.Raft.Heartbeat.String(),
		"gossip-probe-interval": def.Gossip.ProbeInterval.String()} {
		if fl := f.Lookup(name); fl == nil || fl.DefValue != want {
			t.Errorf("--%s: %+v, want default %s", name, fl, want)
		}
	}

	got := parse("--raft-timeout", "300ms", "--gossip-probe-interval", "200ms", "--ready-timeout", "5s")
	want := def
	want.Raft.Heartbeat, want.Raft.Election, want.Raft.LeaderLease = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
	want.Gossip.ProbeInterval, want.Gossip.ProbeTimeout = 200*time.Millisecond, 100*time.Millisecond
	want.ReadyTimeout = 5 * time.Second
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("flags give\n%+v\nwant\n%+v", got, want)
	}
}
