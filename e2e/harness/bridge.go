package harness

// Bridge creates a Linux bridge inside hub, with an optional address
// (CIDR, empty = none): a shared L2 segment for several nodes, like a rack
// switch. It stays inside hub's namespace and goes with it.
func (l *Lab) Bridge(hub *Node, name, cidr string) {
	l.t.Helper()
	mustRun(l.t, "ip", "-n", hub.NS, "link", "add", name, "type", "bridge")
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
	mustRun(l.t, "ip", "-n", hub.NS, "link", "add", port, "type", "veth", "peer", "name", ifName, "netns", n.NS)
	mustRun(l.t, "ip", "-n", hub.NS, "link", "set", port, "master", bridge, "up")
	n.configureLink(l.t, ifName, cidr)
}
