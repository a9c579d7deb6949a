package coordinator

import "github.com/dsae/dsae/coordinator/internal/faults"

// Kill stops the node as abruptly as an in-process stop allows: no
// leadership handover and no gossip leave message, so peers detect a
// failure rather than a departure.
func (n *Node) Kill() error {
	faults.KillPool(n.pool)
	return n.shutdown(false)
}
