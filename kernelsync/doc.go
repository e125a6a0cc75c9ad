// Package kernelsync is the kernel side of petrel: the three loops of
// calico-node's bird.cfg, done event-driven.
//
//   - kernel (kernel.go): programs the speaker's best paths into the FIB as
//     routes with petrel's protocol number, one multi-nexthop route per
//     multipath set (BIRD's "merge paths"); repairs outside changes to them
//     as soon as netlink reports them; learns alien routes back into the
//     speaker ("learn"); leaves its routes in place when petrel stops and
//     adopts them on start ("persist", graceful restart).
//   - device (device.go): tracks links and addresses, so that next hops
//     over a down link are dropped and peers reachable only over it are
//     brought down at once.
//   - direct (device.go, directPrefixes): connected prefixes of the interfaces that match
//     an ordered pattern list become local routes in the speaker.
//
// A full scan every ScanTime is the safety net, not the main path.
//
// One goroutine (Sync.Run) owns all state; netlink subscriptions and the
// speaker only feed it. The package touches only routes in its table that
// carry its protocol number: every other route is read, never written.
package kernelsync
