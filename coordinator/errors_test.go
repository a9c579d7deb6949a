package coordinator

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/dsae/dsae/coordinator/client"
)

// TestClientRefusedMatchesServerCodes: the errors the server answers with
// a refusal are the ones client.Refused tells workers not to retry, and
// the transient ones (no leader, a deadline) are retried.
func TestClientRefusedMatchesServerCodes(t *testing.T) {
	for err, refused := range map[error]bool{
		ErrInvalidSpec: true, ErrNotFound: true, ErrStaleGeneration: true, ErrNotMember: true,
		ErrTerminal: true, ErrStepBackwards: true, ErrBusy: true,
		ErrNoLeader: false, raft.ErrNotLeader: false, raft.ErrLeadershipLost: false, context.DeadlineExceeded: false,
	} {
		st := toStatus(fmt.Errorf("wrapped: %w", err))
		if got := client.Refused(st); got != refused {
			t.Errorf("%v → %v: client.Refused = %v, want %v", err, st, got, refused)
		}
	}
}
