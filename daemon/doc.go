// Package daemon wires petrel's packages into the node agent: it owns the
// process lifetime (start, reload, stop), the gRPC control API on the unix
// socket, and the order in which the speaker and its inputs come up.
//
// It holds no routing logic of its own. On stop it deliberately leaves BGP
// sessions to die with the process instead of sending Cease, so that peers
// keep petrel's routes under graceful restart while it comes back.
//
// # Reconcilers
//
// Both modes keep the node equal to a desired state in passes. A pass
// computes desired in one place (computeDesired from a datastore snapshot
// in desired.go, desiredFromFile from a config file) and hands it to a
// reconcileLoop: one small reconciler per concern, each remembering what
// it applied last and changing only what differs, run in the fixed order
// documented on datastoreLoop:
//
//	exportReconciler  export ranges, route reflection, originated prefixes
//	blockReconciler   blackhole routes of the node's IPAM blocks
//	vxlanReconciler   a VXLAN tunnel (one per family) and the hand-off of its blocks
//	statusReconciler  problems shown in status, restart-only changes
//	peerReconciler    the BGP peer set
//
// Standalone mode runs the export and peer reconcilers only.
//
// Adding a concern (Kubernetes Service advertisement is next) is: a field
// in desired, filled in computeDesired; a reconciler with Reconcile(ctx,
// desired) driving a narrow interface (for services, the speaker's
// SetInjected) through lastApplied; and its place in datastoreLoop, before
// peerReconciler. Its unit test uses an in-memory fake of that interface,
// as reconcile_test.go does.
package daemon
