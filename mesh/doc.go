// Package mesh computes the BGP sessions one node should have, the way
// calico-node's confd renders them into bird.cfg: the node-to-node mesh,
// global and node-specific BGPPeers, peerSelector peerings and their reverse
// side, and route-reflector clients.
//
// It owns only that computation: Desired is a pure function from datastore
// objects (Nodes, BGPPeers, BGPConfigurations) to a list of bgp.PeerConfig.
// It never reads the datastore, never talks to the BGP speaker and never
// touches the network or the kernel; the daemon's reconciler feeds it
// snapshots and hands the result to bgp.Speaker.SetPeers, which leaves
// unchanged sessions alone.
//
// One bad object never stops the others: an invalid Node, BGPPeer or
// BGPConfiguration, an unparseable selector, an unresolvable password or a
// duplicate address is skipped and reported in Result.Problems, each error
// naming the object it concerns.
//
// Choices where Calico's behaviour is ambiguous or petrel cannot match it
// exactly:
//
//   - Address families: sessions between petrel nodes (mesh, peerSelector
//     peerings and their reverse side) run once per family both nodes have
//     a BGP address of, as confd renders bird.cfg from spec.bgp.ipv4Address
//     and bird6.cfg from spec.bgp.ipv6Address: a dual-stack pair has an
//     IPv4 and an IPv6 session, an IPv6-only node (no ipv4Address) meshes
//     over IPv6 with the nodes that have one. Each session carries its own
//     family only (bgp.PeerConfig's address decides), as bird and bird6 do.
//     A node with neither address has no peers.
//   - Passive side: a session to another petrel node is passive when the
//     peer's address, as a string, is greater than our address of the same
//     family (confd's templates compare strings, so "10.0.0.10" <
//     "10.0.0.9" and "fd00::10" < "fd00::9"). Both ends compute the same
//     order, so exactly one side connects.
//   - ttlSecurity N is GTSM as BIRD's "ttl security on; multihop N": out
//     with TTL 255, in only with a TTL of at least 256-N (the kernel's
//     IP_MINTTL drops the rest). Without ttlSecurity, confd renders a bare
//     "multihop" for every peer; for eBGP peers that is BIRD's default TTL
//     64 (DefaultMultihopTTL); iBGP sessions are not TTL-limited anyway.
//   - Passwords live in Secrets (secretKeyRef). Input.Secret resolves them;
//     when it is nil or fails, the peer (or, for nodeMeshPassword, every
//     mesh peer) is skipped with a Problem, because a session configured
//     without the password its peer expects would never come up and would
//     only hide the misconfiguration.
//   - Per-node BGPConfiguration "node.<name>" overrides "default" for
//     nodeToNodeMeshEnabled, listenPort, nodeMeshPassword and
//     nodeMeshMaxRestartTime when it sets them. The AS number comes from
//     the Node (spec.bgp.asNumber) or "default" only.
//   - A node that is a peer (mesh or peerSelector) is reached on its own
//     listen port: its node.<name> listenPort, else default's, else 179.
//   - peerSelector peerings are typed like the BGPPeer's scope (global when
//     it has neither node nor nodeSelector, else node specific); the reverse
//     side, on the selected node, is always node specific (confd stores it
//     under the selected host). The reverse session's remote AS is the
//     BGPPeer's localASNumber when set (that is the AS the other side
//     presents), else the remote node's AS; the reverse side keeps its own
//     local AS.
//   - An explicit peerIP that belongs to a Calico node takes that node's
//     routeReflectorClusterID when deciding whether it is an RR client.
//   - Duplicate addresses: candidates are ordered mesh, global, node
//     specific (then BGPPeer name, then address); the first wins. A
//     duplicate produced by the same source (e.g. a peerSelector peering and
//     its reverse between two route reflectors) is dropped silently; one
//     from a different source is reported as a Problem. This includes
//     Calico's rule that a node-specific peer to an address that already
//     has a global peering is dropped.
//   - Peers to this node's own address are silently skipped, as confd does.
//   - A session's source address is this node's BGP address of the peer's
//     family. A peer of a family this node has no BGP address of is
//     skipped, as confd renders no bird/bird6 config for it; only a
//     node-specific BGPPeer with an explicit peerIP is also a Problem (a
//     global one, or a peerSelector peering, is normal in a mixed
//     cluster), unless sourceAddress is None.
//   - failureDetectionMode BFDIfDirectlyConnected (BGPPeer; the mesh's is
//     BGPConfiguration nodeMeshFailureDetectionMode, petrel's own) turns BFD
//     on when the peer lies inside a connected prefix of one of this node's
//     interfaces (Input.Interfaces; without them, the Node's BGP address
//     subnets). The timers come from the first BFDConfiguration by name
//     whose nodeSelector matches this node (another match is a Problem, as
//     Calico Enterprise logs it), from its first interfaces entry whose
//     matchPattern matches that interface; unset timers are petrel's
//     defaults (bgp.DefaultBFDInterval x bgp.DefaultBFDMultiplier).
//   - restartMode LongLivedGracefulRestart (mesh: nodeMeshRestartMode) makes
//     maxRestartTime (nodeMeshMaxRestartTime) the long-lived stale time,
//     default bgp.DefaultLLGRStaleTime, as Calico Enterprise renders it.
//   - reachableBy (a BGPPeer with peerIP that applies to this node) is
//     Result.ReachableBy, a static route to the peer for the daemon.
//   - Not represented in bgp.PeerConfig and ignored here: nextHopMode /
//     keepOriginalNextHop, numAllowedLocalASNumbers, filters,
//     localWorkloadSelector.
package mesh
