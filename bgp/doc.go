// Package bgp is petrel's BGP speaker: an embedded GoBGP server behind
// petrel's own types.
//
// It owns the GoBGP BgpServer (one per process), a GoBGP BFD server beside
// it that watches the Established sessions which ask for BFD (bfd.go says
// why not the BgpServer's own), the peer set, the export and import
// policies, the prefixes this node originates, and a view of the
// best/multipath routes that it publishes to subscribers (kernel sync, the
// gRPC route watch). It is the only package that imports GoBGP; everything
// outside speaks netip.Prefix, netip.Addr and the structs in this package.
//
// It never touches the kernel: installing routes is kernelsync's job.
//
// Export rule (calico_export_to_bgp_peers): only routes that this node put
// into the RIB itself (originated blocks and Service prefixes, learned
// kernel routes) and that fall inside the exportable set ever leave; a
// route learned from a peer is never re-advertised, except by a route
// reflector, inside the pools and the Service ranges. The rule holds per
// address family, with one prefix set per family.
//
// Address families: a session carries the unicast family of its peer's
// address only (IPv4 sessions IPv4 routes, IPv6 sessions IPv6 routes), as
// calico-node's bird and bird6 do; a dual-stack peer is two sessions.
// Originated paths leave with next hop unspecified, so GoBGP puts the
// session's local address (the node's BGP address of that family) there.
// Link-local sessions are refused: that next hop would have no interface.
package bgp
