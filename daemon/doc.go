// Package daemon wires petrel's packages into the node agent: it owns the
// process lifetime (start, reload, stop), the gRPC control API on the unix
// socket, and the order in which the speaker and its inputs come up.
//
// It holds no routing logic of its own. On stop it deliberately leaves BGP
// sessions to die with the process instead of sending Cease, so that peers
// keep petrel's routes under graceful restart while it comes back.
package daemon
