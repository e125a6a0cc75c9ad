package kernelsync

import "net/netip"

// fibEntry is everything the kernel loop knows about one prefix, in one
// record: one map to grow and one lookup per event, where parallel maps
// (gateways, desired, installed, stale, ...) cost a lookup and a growing
// hash table each. At 100k routes that is most of the loop's memory.
type fibEntry struct {
	// gateways are the speaker's multipath next hops, unfiltered (nothing
	// else is needed to re-filter when links change); nil when BGP has no
	// route or only a local one.
	gateways []netip.Addr
	// desired is what the FIB should hold; nil means nothing of ours.
	desired []nexthop
	// installed is our route in the kernel, as last seen or written; valid
	// only with flagInstalled (a device route of ours has no next hops).
	installed []nexthop
	flags     entryFlags
}

type entryFlags uint8

const (
	flagInstalled entryFlags = 1 << iota
	// flagStale: adopted at start, not yet refreshed (graceful restart).
	flagStale
	// flagClobbered: someone else deleted, changed or replaced our route
	// with one of another protocol; we put ours back. Anywhere else a
	// foreign route holds the key (a connected route, an operator's static
	// route that was there first) petrel does not override it.
	flagClobbered
	// flagFailing: the last write failed; retried each scan.
	flagFailing
	// flagDirty: queued in Sync.dirty for the next flush.
	flagDirty
	// flagSeen: found by the scan under way.
	flagSeen
	// flagForeignHeld: our add found a route of another protocol holding
	// the key; we leave it there (explain and convergence read this).
	flagForeignHeld
)

func (e *fibEntry) has(f entryFlags) bool { return e.flags&f != 0 }

// empty reports whether the entry carries nothing worth keeping.
func (e *fibEntry) empty() bool { return e.gateways == nil && e.desired == nil && e.flags == 0 }

// fibTable is the kernel loop's per-prefix state, with counts kept as the
// entries change so that stats never walk the table.
type fibTable struct {
	entries            map[netip.Prefix]*fibEntry
	installed, failing int
	installed6         int // the IPv6 ones among installed
}

func newFibTable() fibTable { return fibTable{entries: map[netip.Prefix]*fibEntry{}} }

// get returns p's entry, or nil.
func (t *fibTable) get(p netip.Prefix) *fibEntry { return t.entries[p] }

// entry returns p's entry, creating it.
func (t *fibTable) entry(p netip.Prefix) *fibEntry {
	e := t.entries[p]
	if e == nil {
		e = &fibEntry{}
		t.entries[p] = e
	}
	return e
}

// forget drops p's entry once it carries nothing.
func (t *fibTable) forget(p netip.Prefix, e *fibEntry) {
	if e.empty() {
		delete(t.entries, p)
	}
}

// setInstalled records our route in the kernel for e.
func (t *fibTable) setInstalled(p netip.Prefix, e *fibEntry, nhs []nexthop) {
	if !e.has(flagInstalled) {
		t.installed++
		t.installed6 += ipv6Count(p)
	}
	e.installed = nhs
	e.flags |= flagInstalled
}

// ipv6Count is 1 for an IPv6 prefix, else 0.
func ipv6Count(p netip.Prefix) int {
	if p.Addr().Is6() {
		return 1
	}
	return 0
}

// clearInstalled records that e has no route of ours in the kernel.
func (t *fibTable) clearInstalled(p netip.Prefix, e *fibEntry) {
	if e.has(flagInstalled) {
		t.installed--
		t.installed6 -= ipv6Count(p)
	}
	e.installed = nil
	e.flags &^= flagInstalled | flagStale
}

// setFailing sets or clears e's failed-write mark.
func (t *fibTable) setFailing(e *fibEntry, on bool) {
	switch {
	case on && !e.has(flagFailing):
		t.failing++
		e.flags |= flagFailing
	case !on && e.has(flagFailing):
		t.failing--
		e.flags &^= flagFailing
	}
}
