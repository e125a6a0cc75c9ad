package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
)

// A reconciler owns one concern of the node (its peers, what it exports,
// its blackholes, its VXLAN tunnel...) and makes it match desired. It
// remembers what it applied last and changes only what differs, so a pass
// in which its part of desired did not change costs nothing. A failed
// change is not remembered, so the next pass tries it again.
//
// This is the shape of Cilium's BGP control plane
// (pkg/bgpv1/manager/reconciler): one small reconciler per concern, run in
// a fixed order by one loop.
type reconciler interface {
	// Name says which concern failed, in errors.
	Name() string
	Reconcile(ctx context.Context, d *desired) error
}

// reconcileLoop runs its reconcilers in order, every one of them on every
// pass: one that fails does not stop the others.
type reconcileLoop []reconciler

// Reconcile brings every concern to d and returns what failed, by name.
func (l reconcileLoop) Reconcile(ctx context.Context, d *desired) error {
	var errs []error
	for _, r := range l {
		if err := r.Reconcile(ctx, d); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// lastApplied is the value a reconciler last applied successfully.
type lastApplied[T any] struct {
	value T
	ok    bool // false: nothing applied yet, or the last attempt failed
}

// apply calls set with want unless want is what was applied last.
func (l *lastApplied[T]) apply(want T, set func(T) error) error {
	if l.ok && reflect.DeepEqual(l.value, want) {
		return nil
	}
	if err := set(want); err != nil {
		l.ok = false
		return err
	}
	l.value, l.ok = want, true
	return nil
}

// loopTargets are what the reconcilers drive.
type loopTargets struct {
	speaker interface {
		exportTarget
		policyTarget
		peerTarget
	}
	kernel interface { // nil when kernel sync is off
		blackholeTarget
		excludeTarget
	}
	api problemTarget
	log *slog.Logger
	// level, when set, follows BGPConfiguration logSeverityScreen, and
	// envLevel when that is unset.
	level    *slog.LevelVar
	envLevel slog.Level
	// services is the Service controller; nil without a Kubernetes API.
	services serviceTarget
	// restart asks for a graceful restart in place (see RestartInPlace).
	restart func(*RestartInPlace)
	// ipip is what IPIP pools need (IPAM, tunl0); nil: not handled.
	ipip *ipipDeps
	// peerRoutes opens the reachableBy routes' writer; nil: not handled.
	peerRoutes func() (peerRouteSyncer, error)
	// forwarding, when set, turns IPv6 forwarding on once the node routes
	// IPv6 (ipv6Forwarding=Auto).
	forwarding *forwardingReconciler
}

// targets are the agent's parts the reconcilers drive.
func (a *agent) targets() loopTargets {
	t := loopTargets{speaker: a.speaker, api: a.api, log: a.log}
	if a.ipv6ForwardingAuto {
		t.forwarding = &forwardingReconciler{root: sysctlRoot, log: a.log}
	}
	if a.kernel != nil { // a nil *kernelsync.Sync must not become a non-nil interface
		t.kernel = a.kernel
	}
	return t
}

// datastoreLoop is datastore mode's pass, in this order:
//
//  0. the log level (logSeverityScreen), so the rest logs at the new one;
//     0b. IPv6 forwarding (Auto), before the node's first IPv6 route;
//  1. exported prefixes: export ranges, route reflection and originated
//     prefixes are in place before peers change, so a new session's first
//     update is already right;
//  2. IPAM blocks: the blackholes of the blocks just originated; and
//     ignoredInterfaces, protocol direct's;
//  3. VXLAN: the tunnels (vxlan.calico, then vxlan-v6.calico), and the
//     hand-off of their blocks from kernel sync; IPIP the same for tunl0
//     (and a problem for status where it cannot exist); then BGPPeer
//     reachableBy's host routes to the peers;
//     3b. Services: the configured Service ranges, to the Service controller
//     (which advertises from its own informers);
//  4. status: problems and restart-only changes, for the operator;
//  5. route policy (BGPFilters, next-hop modes, communities), before
//  6. peers, last, so that new peers see everything above; an asNumber
//     changed since the start becomes the local AS of the sessions that
//     used the node's; the first peer set waits for the first Service
//     advertisement.
//
// A new concern is one more reconciler in this list, with its part of
// desired computed in computeDesired.
func datastoreLoop(t loopTargets, first *desired, setupTunnel func(context.Context, vxlanFamily, []netip.Prefix) (tunnel, error)) reconcileLoop {
	var loop reconcileLoop
	if t.level != nil {
		loop = append(loop, &logLevelReconciler{level: t.level, fallback: t.envLevel, log: t.log})
	}
	if t.forwarding != nil {
		loop = append(loop, t.forwarding)
	}
	loop = append(loop, &exportReconciler{speaker: t.speaker})
	vx := &vxlanReconciler{fam: vxlanV4, setup: setupTunnel}
	vx6 := &vxlanReconciler{fam: vxlanV6, setup: setupTunnel}
	ipip := &ipipReconciler{deps: t.ipip, log: t.log}
	reach := &reachableReconciler{open: t.peerRoutes}
	if t.kernel != nil {
		loop = append(loop, &blockReconciler{kernel: t.kernel})
		if k, ok := t.kernel.(ignoredTarget); ok {
			loop = append(loop, &ignoredReconciler{kernel: k})
		}
		all := &excludeUnion{kernel: t.kernel}
		vx.kernel, vx6.kernel = all.owner("VXLAN"), all.owner("VXLAN IPv6")
		ipip.kernel, reach.kernel = all.owner("IPIP"), all.owner("reachableBy")
	}
	loop = append(loop, vx, vx6)
	if t.ipip != nil {
		loop = append(loop, ipip)
	}
	if t.peerRoutes != nil {
		loop = append(loop, reach)
	}
	peers := &peerReconciler{speaker: t.speaker, log: t.log}
	if t.services != nil {
		loop = append(loop, &serviceReconciler{controller: t.services})
		peers.waitFor = t.services.Ready()
	}
	return append(loop,
		&statusReconciler{api: t.api, log: t.log, startedPort: first.ListenPort, startedBind: first.BindNodeIP, restart: t.restart},
		&policyReconciler{speaker: t.speaker},
		&asnReconciler{started: first.ASN},
		peers)
}

// standaloneLoop is standalone mode's pass: what the config file says to
// export, then its peers (the same reconcilers as datastore mode's).
func standaloneLoop(t loopTargets) reconcileLoop {
	var loop reconcileLoop
	if t.forwarding != nil {
		loop = append(loop, t.forwarding)
	}
	return append(loop, &exportReconciler{speaker: t.speaker}, &peerReconciler{speaker: t.speaker})
}
