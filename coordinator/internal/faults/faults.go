// Package faults gives the coordinator's tests the crash of a gossip
// member without putting a crash method on client.Pool, which every worker
// sees. Package client sets the hooks when it is initialized; only tests
// call them. Being internal, the package is out of reach of workers and
// of everything outside coordinator/.
package faults

// KillPool stops a *client.Pool without a leave message, so that its peers
// detect a failure (after the failure detector's timeouts) instead of a
// departure, as after a crash. A later Close does nothing.
var KillPool func(pool any) error
