package harness

import "github.com/petrel-net/petrel/internal/netnsbuild"

// Bridge creates a Linux bridge inside hub, with an optional address
// (CIDR, empty = none): a shared L2 segment for several nodes, like a rack
// switch. It stays inside hub's namespace and goes with it.
func (l *Lab) Bridge(hub *Node, name, cidr string) {
	l.t.Helper()
	must(l.t, netnsbuild.Bridge(hub.NS, name))
	hub.configureLink(l.t, name, cidr)
}

// Attach plugs n into hub's bridge with a veth whose node end is ifName
// with address cidr.
func (l *Lab) Attach(hub *Node, bridge string, n *Node, ifName, cidr string) {
	l.t.Helper()
	port := "p-" + n.Name
	if len(port) > 15 {
		port = port[:15]
	}
	must(l.t, netnsbuild.Veth(hub.NS, port, n.NS, ifName))
	must(l.t, netnsbuild.SetMaster(hub.NS, port, bridge))
	must(l.t, netnsbuild.Up(hub.NS, port))
	n.configureLink(l.t, ifName, cidr)
}
