package mesh

import (
	"cmp"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/selector"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultMultihopTTL is the TTL BIRD uses for a bare "multihop", which
// confd renders for every peer without ttlSecurity.
const DefaultMultihopTTL = 64

// Input is a snapshot of what Desired reads.
type Input struct {
	// NodeName is this node's name.
	NodeName string
	Nodes    []*datastore.Node
	Peers    []*datastore.BGPPeer
	// Configs holds "default" and any "node.<name>" BGPConfigurations.
	Configs []*datastore.BGPConfiguration
	// NodeLabels gives each node's labels (selectors match on them); the
	// Node objects' own labels are used when this is nil.
	NodeLabels map[string]map[string]string
	// BFDConfigs are the BFDConfiguration objects; the first by name whose
	// nodeSelector matches this node gives its BFD timers.
	BFDConfigs []*datastore.BFDConfiguration
	// Interfaces are this node's interfaces with their connected prefixes:
	// a peer inside one is directly connected (failureDetectionMode
	// BFDIfDirectlyConnected) and takes the BFD timers of the interface's
	// matchPattern. Nil means "the subnets of the Node's BGP addresses, on
	// an interface without a name" (only matchPattern "*" matches it).
	Interfaces []Interface
	// Secret resolves a password's secretKeyRef (Secret name, key) to the
	// password. Nil means passwords are unsupported: peers that need one
	// are skipped with a Problem.
	Secret func(name, key string) (string, error)
	// Filters are the BGPFilters BGPPeers name in spec.filters.
	Filters []*datastore.BGPFilter
}

// Interface is one network interface of this node.
type Interface struct {
	Name     string
	Prefixes []netip.Prefix
}

// Result is this node's desired BGP setup.
type Result struct {
	// Peers is sorted by address, at most one per address.
	Peers []bgp.PeerConfig
	// ASN is this node's AS: Node spec.bgp.asNumber, else the "default"
	// BGPConfiguration's asNumber, else 64512.
	ASN uint32
	// ListenPort is node.<name> listenPort, else default's, else 179.
	ListenPort uint16
	// Policy is the route policy of the peers' BGPFilters and next-hop
	// modes and of the prefixAdvertisements communities.
	Policy bgp.RoutePolicy
	// Problems lists the objects skipped (each error names its object).
	Problems []error
	// ReachableBy are the BGPPeers' static routes to their peers.
	ReachableBy []StaticRoute
}

// Order of candidate classes: the first peering of an address wins.
const (
	classMesh = iota
	classGlobal
	classNode
)

type nodeInfo struct {
	name      string
	addr      netip.Addr     // IPv4 BGP address; invalid when none
	addr6     netip.Addr     // IPv6 BGP address; invalid when none
	subnets   []netip.Prefix // the BGP addresses with their prefix lengths
	asn       uint32
	clusterID netip.Addr // invalid when not a route reflector
	labels    map[string]string
	port      uint16
}

type candidate struct {
	peer   bgp.PeerConfig
	policy bgp.PeerPolicy
	class  int
	order  string // BGPPeer name; "" for the mesh
	source string // the object that produced it, for Problems
}

// target is the remote end of a session before per-peer options.
type target struct {
	addr      netip.Addr
	port      uint16
	asn       uint32
	clusterID netip.Addr
}

type computation struct {
	in         Input
	problems   []error
	defCfg     *datastore.BGPConfiguration
	nodeCfgs   map[string]*datastore.BGPConfiguration // by node name
	globalASN  uint32
	nodes      []*nodeInfo // valid nodes, sorted by name
	byName     map[string]*nodeInfo
	byAddr     map[netip.Addr]*nodeInfo
	self       *nodeInfo
	cands      []candidate
	bfd        *datastore.BFDConfiguration // the one for this node, if any
	filters    map[string]*datastore.BGPFilter
	badFilters []string // names of BGPFilters that failed validation
	static     []StaticRoute
}

func (c *computation) problem(err error) { c.problems = append(c.problems, err) }

// Desired computes this node's desired BGP peers from the datastore
// contents. It never fails as a whole: objects it cannot use are skipped
// and reported in Result.Problems.
func Desired(in Input) Result {
	c := &computation{in: in, nodeCfgs: map[string]*datastore.BGPConfiguration{}, byName: map[string]*nodeInfo{}, byAddr: map[netip.Addr]*nodeInfo{}}
	c.loadConfigs()
	c.loadNodes()

	res := Result{ASN: c.globalASN, ListenPort: c.listenPort(in.NodeName)}
	self := c.byName[in.NodeName]
	switch {
	case self == nil:
		if !c.invalidNode(in.NodeName) {
			c.problem(fmt.Errorf("Node %q: not found; this node has no BGP peers", in.NodeName))
		}
	case !self.addr.IsValid() && !self.addr6.IsValid():
		res.ASN = self.asn
		c.problem(fmt.Errorf("Node %q: no BGP address (spec.bgp.ipv4Address or spec.bgp.ipv6Address); this node has no BGP peers", in.NodeName))
	default:
		res.ASN = self.asn
		c.self = self
		c.loadBFD()
		c.loadFilters()
		c.mesh()
		for _, p := range sortedPeers(in.Peers) {
			if err := c.bgpPeer(p); err != nil {
				c.problem(err)
			}
		}
		res.Peers, res.Policy.Peers = c.dedupe()
		res.Policy.Communities = c.prefixCommunities()
	}
	res.Problems, res.ReachableBy = c.problems, c.static
	return res
}

// invalidNode reports whether a Node of that name was present but
// rejected (its Problem is already recorded).
func (c *computation) invalidNode(name string) bool {
	for _, n := range c.in.Nodes {
		if n != nil && n.Name == name {
			return true
		}
	}
	return false
}

func (c *computation) loadConfigs() {
	c.globalASN = bgp.DefaultASN
	seen := map[string]bool{}
	for _, cfg := range c.in.Configs {
		if cfg == nil {
			continue
		}
		if err := cfg.Validate(); err != nil {
			c.problem(fmt.Errorf("%w; ignored", err))
			continue
		}
		if seen[cfg.Name] {
			c.problem(fmt.Errorf("BGPConfiguration %q: listed twice; the first is used", cfg.Name))
			continue
		}
		seen[cfg.Name] = true
		if cfg.Name == "default" {
			c.defCfg = cfg
			if cfg.Spec.ASNumber != nil {
				c.globalASN = *cfg.Spec.ASNumber
			}
		} else {
			c.nodeCfgs[strings.TrimPrefix(cfg.Name, "node.")] = cfg
		}
	}
}

func (c *computation) listenPort(node string) uint16 {
	if cfg := c.nodeCfgs[node]; cfg != nil && cfg.Spec.ListenPort != 0 {
		return cfg.Spec.ListenPort
	}
	if c.defCfg != nil && c.defCfg.Spec.ListenPort != 0 {
		return c.defCfg.Spec.ListenPort
	}
	return bgp.DefaultPort
}

func (c *computation) loadNodes() {
	for _, n := range c.in.Nodes {
		if n == nil {
			continue
		}
		if err := n.Validate(); err != nil {
			c.problem(fmt.Errorf("%w; node skipped", err))
			continue
		}
		if c.byName[n.Name] != nil {
			c.problem(fmt.Errorf("Node %q: listed twice; the first is used", n.Name))
			continue
		}
		ni := &nodeInfo{name: n.Name, asn: c.globalASN, labels: n.Labels, port: c.listenPort(n.Name)}
		if c.in.NodeLabels != nil {
			ni.labels = c.in.NodeLabels[n.Name]
		}
		if p, ok := n.IPv4(); ok {
			ni.addr = p.Addr()
			ni.subnets = append(ni.subnets, p)
		}
		if p, ok := n.IPv6(); ok && p.Addr().IsLinkLocalUnicast() {
			c.problem(fmt.Errorf("Node %q: spec.bgp.ipv6Address %s is link-local, which BGP next hops cannot use; no IPv6 sessions with it", n.Name, p.Addr()))
		} else if ok {
			ni.addr6 = p.Addr()
			ni.subnets = append(ni.subnets, p)
		}
		if b := n.Spec.BGP; b != nil {
			if b.ASNumber != nil {
				ni.asn = *b.ASNumber
			}
			if b.RouteReflectorClusterID != "" {
				ni.clusterID, _ = netip.ParseAddr(b.RouteReflectorClusterID) // validated
			}
		}
		c.byName[n.Name] = ni
		c.nodes = append(c.nodes, ni)
	}
	slices.SortFunc(c.nodes, func(a, b *nodeInfo) int { return cmp.Compare(a.name, b.name) })
	for _, ni := range c.nodes {
		for _, a := range ni.addrs() {
			if other := c.byAddr[a]; other != nil {
				c.problem(fmt.Errorf("Node %q: spec.bgp.%s %s is also Node %q's; peers at that address are taken to be Node %q", ni.name, addressField(a), a, other.name, other.name))
				continue
			}
			c.byAddr[a] = ni
		}
	}
}

// addrs are the node's BGP addresses: IPv4 first, then IPv6.
func (n *nodeInfo) addrs() []netip.Addr {
	out := make([]netip.Addr, 0, 2)
	for _, a := range []netip.Addr{n.addr, n.addr6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

// of returns the node's BGP address of a's family (invalid when none).
func (n *nodeInfo) of(a netip.Addr) netip.Addr {
	if a.Is4() {
		return n.addr
	}
	return n.addr6
}

// addressField names the Node field holding an address of a's family.
func addressField(a netip.Addr) string {
	if a.Is4() {
		return "ipv4Address"
	}
	return "ipv6Address"
}

// sessionAddrs are the addresses of node n this node has sessions to: one
// per family both have a BGP address of (as confd renders bird.cfg from
// the IPv4 addresses and bird6.cfg from the IPv6 ones), never one of our
// own addresses.
func (c *computation) sessionAddrs(n *nodeInfo) []netip.Addr {
	var out []netip.Addr
	for _, a := range n.addrs() {
		if own := c.self.of(a); own.IsValid() && own != a {
			out = append(out, a)
		}
	}
	return out
}

// passiveTowards says whether the session to a petrel node at addr waits
// for the other side: the side with the greater address, compared as
// strings within the family as confd's templates do, is passive.
func (c *computation) passiveTowards(addr netip.Addr) bool {
	return addr.String() > c.self.of(addr).String()
}

// meshSetting returns the per-node BGPConfiguration's value when it sets
// one (non-nil), else default's, along with the object's name.
func meshSetting[T any](c *computation, get func(*datastore.BGPConfigurationSpec) *T) (*T, string) {
	if cfg := c.nodeCfgs[c.in.NodeName]; cfg != nil {
		if v := get(&cfg.Spec); v != nil {
			return v, cfg.Name
		}
	}
	if c.defCfg != nil {
		if v := get(&c.defCfg.Spec); v != nil {
			return v, c.defCfg.Name
		}
	}
	return nil, ""
}

// setString is s as a meshSetting value: nil when unset.
func setString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (c *computation) mesh() {
	enabled, _ := meshSetting(c, func(s *datastore.BGPConfigurationSpec) *bool { return s.NodeToNodeMeshEnabled })
	if enabled != nil && !*enabled {
		return
	}
	if c.self.clusterID.IsValid() {
		return // route reflectors do not join the mesh
	}
	maxRestart, _ := meshSetting(c, func(s *datastore.BGPConfigurationSpec) *metav1.Duration { return s.NodeMeshMaxRestartTime })
	detection, _ := meshSetting(c, func(s *datastore.BGPConfigurationSpec) *string { return setString(s.NodeMeshFailureDetectionMode) })
	restartMode, _ := meshSetting(c, func(s *datastore.BGPConfigurationSpec) *string { return setString(s.NodeMeshRestartMode) })
	var maxPrefixes uint32 // 0: bgp's default
	if n, _ := meshSetting(c, func(s *datastore.BGPConfigurationSpec) *uint32 { return s.NodeMeshMaxPrefixes }); n != nil {
		maxPrefixes = *n
	}
	var password string
	if pw, from := meshSetting(c, func(s *datastore.BGPConfigurationSpec) *datastore.BGPPassword { return s.NodeMeshPassword }); pw != nil {
		var err error
		if password, err = c.resolvePassword(pw); err != nil {
			c.problem(fmt.Errorf("BGPConfiguration %q: spec.nodeMeshPassword: %w; node-to-node mesh peers skipped", from, err))
			return
		}
	}
	for _, n := range c.nodes {
		if n == c.self || n.clusterID.IsValid() {
			continue
		}
		for _, a := range c.sessionAddrs(n) {
			p := c.peerConfig(target{addr: a, port: n.port, asn: n.asn, clusterID: n.clusterID}, bgp.PeerTypeMesh, nil)
			p.Password = password
			c.failureAndRestart(&p, deref(detection), deref(restartMode), maxRestart)
			p.MaxPrefixes = maxPrefixes
			p.Passive = c.passiveTowards(a)
			c.cands = append(c.cands, candidate{peer: p, class: classMesh, source: "node-to-node mesh"})
		}
	}
}

// peerConfig builds a session to t with the options every Calico peer has
// and, when bp is set, the BGPPeer's own options.
func (c *computation) peerConfig(t target, typ string, bp *datastore.BGPPeer) bgp.PeerConfig {
	p := bgp.PeerConfig{
		Name:            bgp.DefaultPeerName(typ, t.addr),
		Type:            typ,
		Address:         t.addr,
		ASN:             t.asn,
		Port:            cmp.Or(t.port, bgp.DefaultPort),
		SourceAddress:   c.self.of(t.addr),
		GracefulRestart: true,
		RestartTime:     bgp.DefaultRestartTime,
		AddPaths:        true,
	}
	localASN := c.self.asn
	if bp != nil {
		s := bp.Spec
		if s.LocalASNumber != nil {
			p.LocalASN = *s.LocalASNumber
			localASN = p.LocalASN
		}
		if s.KeepaliveTime != nil {
			p.KeepaliveTime = s.KeepaliveTime.Duration
		}
		c.failureAndRestart(&p, s.FailureDetectionMode, s.RestartMode, s.MaxRestartTime)
		if s.SourceAddress == "None" {
			p.SourceAddress = netip.Addr{}
		}
		if s.TTLSecurity != nil && *s.TTLSecurity > 0 {
			p.TTLSecurity = *s.TTLSecurity
		}
		if n := s.NumAllowedLocalASNumbers; n != nil && *n > 0 {
			p.AllowOwnAS = uint8(min(*n, 255))
		}
		p.MaxPrefixes = s.MaxPrefixes
	}
	ibgp := p.ASN == localASN
	if !ibgp && p.Multihop == 0 && p.TTLSecurity == 0 {
		p.Multihop = DefaultMultihopTTL
	}
	if ibgp && c.self.clusterID.IsValid() && t.clusterID != c.self.clusterID {
		p.RouteReflectorClient = true
		p.ClusterID = c.self.clusterID
	}
	return p
}

// failureAndRestart applies Calico Enterprise's failureDetectionMode and
// restartMode. maxRestartTime is the graceful restart time, or with
// LongLivedGracefulRestart the long-lived stale time (as Calico
// Enterprise renders it for BIRD).
func (c *computation) failureAndRestart(p *bgp.PeerConfig, detection, restartMode string, maxRestart *metav1.Duration) {
	var restart time.Duration
	if maxRestart != nil {
		restart = maxRestart.Duration
	}
	switch {
	case restartMode == "LongLivedGracefulRestart":
		p.LongLivedStaleTime = cmp.Or(restart, bgp.DefaultLLGRStaleTime)
	case restart > 0:
		p.RestartTime = restart
	}
	if detection == "BFDIfDirectlyConnected" {
		if iface, ok := c.connectedVia(p.Address); ok {
			p.BFD = c.bfdTimers(iface)
		}
	}
}

// connectedVia names the interface on whose subnet addr lies.
func (c *computation) connectedVia(addr netip.Addr) (string, bool) {
	ifaces := c.in.Interfaces
	if ifaces == nil {
		ifaces = []Interface{{Prefixes: c.self.subnets}}
	}
	for _, iface := range ifaces {
		for _, p := range iface.Prefixes {
			if p.Bits() < p.Addr().BitLen() && p.Contains(addr) {
				return iface.Name, true
			}
		}
	}
	return "", false
}

// loadBFD picks this node's BFDConfiguration: the first by name whose
// nodeSelector matches (Calico Enterprise supports one per node too).
func (c *computation) loadBFD() {
	for _, cfg := range c.in.BFDConfigs {
		if cfg == nil {
			continue
		}
		if err := cfg.Validate(); err != nil {
			c.problem(fmt.Errorf("%w; ignored", err))
			continue
		}
		if sel, _ := selector.Parse(cmp.Or(cfg.Spec.NodeSelector, "all()")); !sel.Matches(c.self.labels) { // validated
			continue
		}
		switch {
		case c.bfd == nil:
			c.bfd = cfg
		case cfg.Name < c.bfd.Name:
			c.problem(fmt.Errorf("BFDConfiguration %q: also selects Node %q; %q is used", c.bfd.Name, c.self.name, cfg.Name))
			c.bfd = cfg
		default:
			c.problem(fmt.Errorf("BFDConfiguration %q: also selects Node %q; %q is used", cfg.Name, c.self.name, c.bfd.Name))
		}
	}
}

// bfdTimers are the BFD settings for a peer reached over iface: the first
// interface entry of this node's BFDConfiguration that matches it, else
// petrel's defaults.
func (c *computation) bfdTimers(iface string) bgp.BFDConfig {
	out := bgp.BFDConfig{Enabled: true}
	if c.bfd == nil {
		return out
	}
	for _, in := range c.bfd.Spec.Interfaces {
		if ok, _ := path.Match(in.MatchPattern, iface); !ok { // validated
			continue
		}
		if in.MinimumRecvInterval != nil {
			out.MinRx = in.MinimumRecvInterval.Duration
		}
		if in.MinimumSendInterval != nil {
			out.MinTx = in.MinimumSendInterval.Duration
		}
		out.Multiplier = uint8(in.Multiplier)
		break
	}
	return out
}

func (c *computation) resolvePassword(pw *datastore.BGPPassword) (string, error) {
	ref := pw.SecretKeyRef
	if ref == nil {
		return "", nil // a password with nothing to resolve: none
	}
	if c.in.Secret == nil {
		return "", fmt.Errorf("password from Secret %q key %q: no Kubernetes API to read Secrets from (KUBECONFIG or in-cluster)", ref.Name, ref.Key)
	}
	s, err := c.in.Secret(ref.Name, ref.Key)
	if err != nil {
		return "", fmt.Errorf("password from Secret %q key %q: %w", ref.Name, ref.Key, err)
	}
	return s, nil
}

func sortedPeers(ps []*datastore.BGPPeer) []*datastore.BGPPeer {
	out := make([]*datastore.BGPPeer, 0, len(ps))
	for _, p := range ps {
		if p != nil {
			out = append(out, p)
		}
	}
	slices.SortStableFunc(out, func(a, b *datastore.BGPPeer) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func parseSelector(bp *datastore.BGPPeer, field, s string) (selector.Selector, error) {
	if s == "" {
		return nil, nil
	}
	sel, err := selector.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("BGPPeer %q: %s: %w; peer skipped", bp.Name, field, err)
	}
	return sel, nil
}

// bgpPeer adds the sessions one BGPPeer gives this node: forward (the
// BGPPeer applies to us) and reverse (we are selected by its peerSelector).
func (c *computation) bgpPeer(bp *datastore.BGPPeer) error {
	if err := bp.Validate(); err != nil {
		return fmt.Errorf("%w; peer skipped", err)
	}
	if bp.Spec.LocalWorkloadSelector != "" {
		// Peering with workloads (Calico 3.29) needs per-pod sessions
		// petrel does not build; a session to nobody would hide that.
		return fmt.Errorf("BGPPeer %q: spec.localWorkloadSelector: peering with local workloads is not supported; peer skipped", bp.Name)
	}
	sc, err := parseScope(bp)
	if err != nil {
		return err
	}
	forward := sc.appliesTo(c.self)
	reverse := sc.peerSel != nil && bp.Spec.ReversePeering != "Manual" && sc.peerSel.Matches(c.self.labels)
	if !forward && !reverse {
		return nil
	}
	var password string
	if bp.Spec.Password != nil {
		if password, err = c.resolvePassword(bp.Spec.Password); err != nil {
			return fmt.Errorf("BGPPeer %q: spec.password: %w; peer skipped", bp.Name, err)
		}
	}
	if forward {
		c.forwardPeers(sc, password)
		c.reachableBy(bp)
	}
	if reverse {
		c.reversePeers(sc, password)
	}
	return nil
}

// peerScope is which nodes a BGPPeer applies to (node, nodeSelector, or
// every node) and, with a peerSelector, which nodes it peers them with.
type peerScope struct {
	bp      *datastore.BGPPeer
	global  bool
	nodeSel selector.Selector
	peerSel selector.Selector
}

func parseScope(bp *datastore.BGPPeer) (peerScope, error) {
	nodeSel, err := parseSelector(bp, "spec.nodeSelector", bp.Spec.NodeSelector)
	if err != nil {
		return peerScope{}, err
	}
	peerSel, err := parseSelector(bp, "spec.peerSelector", bp.Spec.PeerSelector)
	if err != nil {
		return peerScope{}, err
	}
	return peerScope{bp: bp, global: bp.Spec.Node == "" && nodeSel == nil, nodeSel: nodeSel, peerSel: peerSel}, nil
}

func (sc peerScope) appliesTo(n *nodeInfo) bool {
	switch {
	case sc.global:
		return true
	case sc.bp.Spec.Node != "":
		return n.name == sc.bp.Spec.Node
	}
	return sc.nodeSel.Matches(n.labels)
}

// forwardPeers adds the sessions of a BGPPeer that applies to this node:
// to its peerIP, or to every node its peerSelector selects.
func (c *computation) forwardPeers(sc peerScope, password string) {
	typ, class := bgp.PeerTypeNodeSpecific, classNode
	if sc.global {
		typ, class = bgp.PeerTypeGlobal, classGlobal
	}
	if sc.peerSel == nil {
		addr, port, _ := datastore.ParsePeerIP(sc.bp.Spec.PeerIP) // validated
		t := target{addr: addr, port: port, asn: sc.bp.Spec.ASNumber}
		if n := c.byAddr[addr]; n != nil {
			t.clusterID = n.clusterID
		}
		c.addCandidate(sc.bp, t, typ, class, sc.bp, password)
		return
	}
	for _, n := range c.nodes {
		if n == c.self || !sc.peerSel.Matches(n.labels) {
			continue
		}
		for _, a := range c.sessionAddrs(n) {
			c.addCandidate(sc.bp, target{addr: a, port: n.port, asn: n.asn, clusterID: n.clusterID}, typ, class, sc.bp, password)
		}
	}
}

// reversePeers adds, on a node a peerSelector selects, the other side of
// the sessions: one to each node the BGPPeer applies to.
func (c *computation) reversePeers(sc peerScope, password string) {
	// The other side's options, minus its local AS, which is the AS it
	// presents to us.
	opts := *sc.bp
	opts.Spec.LocalASNumber = nil
	for _, n := range c.nodes {
		if n == c.self || !sc.appliesTo(n) {
			continue
		}
		asn := n.asn
		if sc.bp.Spec.LocalASNumber != nil {
			asn = *sc.bp.Spec.LocalASNumber
		}
		for _, a := range c.sessionAddrs(n) {
			c.addCandidate(sc.bp, target{addr: a, port: n.port, asn: asn, clusterID: n.clusterID}, bgp.PeerTypeNodeSpecific, classNode, &opts, password)
		}
	}
}

// addCandidate adds one session of BGPPeer bp, configured from opts,
// unless it would be with ourselves or over an address family we lack.
func (c *computation) addCandidate(bp *datastore.BGPPeer, t target, typ string, class int, opts *datastore.BGPPeer, password string) {
	own := c.self.of(t.addr)
	if t.addr == own {
		return // never peer with ourselves
	}
	if !own.IsValid() && bp.Spec.SourceAddress != "None" {
		if class == classGlobal || bp.Spec.PeerIP == "" {
			// A global peer, or a node picked by peerSelector, of a family
			// this node lacks: skipped as calico-node's bird.cfg/bird6.cfg
			// leave it out on such a node, not worth a problem in status.
			return
		}
		family := "IPv4"
		if t.addr.Is6() {
			family = "IPv6"
		}
		c.problem(fmt.Errorf("BGPPeer %q: peer %s is %s but Node %q has no %s BGP address (spec.bgp.%s); peer skipped", bp.Name, t.addr, family, c.self.name, family, addressField(t.addr)))
		return
	}
	p := c.peerConfig(t, typ, opts)
	p.Password = password
	if c.byAddr[t.addr] != nil && own.IsValid() {
		// Another petrel node: one side waits, as in the mesh. Two
		// speakers that dial each other in the same millisecond could
		// otherwise both sit in OpenConfirm until the hold time.
		p.Passive = c.passiveTowards(t.addr)
	}
	pol, err := c.peerPolicy(opts, p)
	if err != nil {
		c.problem(err)
		return
	}
	c.cands = append(c.cands, candidate{peer: p, policy: pol, class: class, order: bp.Name, source: fmt.Sprintf("BGPPeer %q", bp.Name)})
}

// dedupe keeps the first candidate per address (mesh, global, node
// specific; then BGPPeer name; then address) and returns them sorted by
// address.
func (c *computation) dedupe() ([]bgp.PeerConfig, map[netip.Addr]bgp.PeerPolicy) {
	slices.SortStableFunc(c.cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.class, b.class), cmp.Compare(a.order, b.order), a.peer.Address.Compare(b.peer.Address))
	})
	kept := map[netip.Addr]candidate{}
	var out []bgp.PeerConfig
	policies := map[netip.Addr]bgp.PeerPolicy{}
	for _, cd := range c.cands {
		if k, dup := kept[cd.peer.Address]; dup {
			if k.source != cd.source {
				c.problem(fmt.Errorf("%s: peer %s dropped: already configured as a %s peer by %s", cd.source, cd.peer.Address, k.peer.Type, k.source))
			}
			continue
		}
		kept[cd.peer.Address] = cd
		out = append(out, cd.peer)
		if len(cd.policy.Export)+len(cd.policy.Import) > 0 || cd.policy.NextHop != bgp.NextHopAuto {
			policies[cd.peer.Address] = cd.policy
		}
	}
	slices.SortFunc(out, func(a, b bgp.PeerConfig) int { return a.Address.Compare(b.Address) })
	return out, policies
}
