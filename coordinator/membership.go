package coordinator

import (
	"time"

	"github.com/dsae/dsae/coordinator/client"
)

// startGossip joins the coordinator to the pool as a coordinator.
func (n *Node) startGossip() (*client.Pool, error) {
	return client.JoinPool(client.PoolConfig{
		Addr:   n.cfg.GossipAddr,
		Meta:   client.NodeMeta{Role: client.RoleCoordinator, ID: n.cfg.ID, GRPC: n.grpcAddr},
		Secret: n.cfg.Auth.Secret,
		Gossip: n.cfg.Gossip,
		Logger: n.log,
	})
}

// gossipRejoinEvery is how often a coordinator checks that it gossips with
// every coordinator the state lists.
const gossipRejoinEvery = 2 * time.Second

// gossipLoop keeps the coordinator in the pool and its health status
// current: a node restarted from its
// data dir, or cut off long enough to be declared dead, joins again
// through the gossip addresses of the coordinators the state lists.
func (n *Node) gossipLoop() {
	t := time.NewTicker(gossipRejoinEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		n.updateHealth()
		in := map[string]bool{}
		for _, m := range n.pool.Members() {
			in[m.ID] = true
		}
		var missing []string
		for _, c := range n.coordinators() {
			if c.Id != n.cfg.ID && !in[c.Id] && c.GossipAddr != "" {
				missing = append(missing, c.GossipAddr)
			}
		}
		if len(missing) > 0 {
			if err := n.pool.Join(missing); err != nil {
				n.log.Debug("gossip rejoin", "addrs", missing, "err", err)
			}
		}
	}
}
