package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/ipam"
	"github.com/petrel-net/petrel/mesh"
)

// DatastoreOptions configure RunDatastore; the command fills them from
// calico-node's environment (NODENAME, DATASTORE_TYPE, IP, ...).
type DatastoreOptions struct {
	NodeName string
	Backend  datastore.Backend
	Mode     string // the datastore type, for status
	// IP is the node's IPv4 address: "autodetect", "10.0.0.5" or
	// "10.0.0.5/24" (the prefix length is looked up when missing).
	IP     string
	Socket string
	Kernel config.Kernel
	Logger *slog.Logger
	Ready  chan<- struct{}
	// MetricsAddr serves Prometheus metrics ("" = none).
	MetricsAddr string
	// Forwarding is the IP forwarding to turn on at start.
	Forwarding config.Forwarding
}

// watchedKinds are the resources that decide the peer set and what may be
// advertised.
var watchedKinds = []datastore.Kind{
	datastore.KindNode, datastore.KindBGPPeer, datastore.KindBGPConfiguration, datastore.KindBFDConfiguration,
	datastore.KindIPPool, datastore.KindIPAMBlock, datastore.KindBlockAffinity,
}

// RunDatastore runs a node whose BGP configuration comes from the
// datastore, as calico-node's does: it registers its Node, then follows
// Nodes, BGPPeers and BGPConfigurations and keeps the peer set equal to
// what they describe. A datastore outage changes nothing; the node
// resyncs when the store returns.
func RunDatastore(ctx context.Context, opts DatastoreOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	ip, err := nodeIP(opts.IP)
	if err != nil {
		return err
	}
	if err := registerNode(ctx, opts.Backend, opts.NodeName, ip, log); err != nil {
		return err
	}
	st := newStoreState(ctx, opts.Backend, log)
	log.Info("waiting for the datastore's Nodes, BGPPeers and BGPConfigurations")
	if err := st.waitSynced(ctx); err != nil {
		return err
	}
	first := mesh.Desired(st.input(opts.NodeName))

	a, err := startAgent(ctx, agentConfig{
		NodeName: opts.NodeName, Mode: opts.Mode, RouterID: ip.Addr(), ASN: first.ASN,
		ListenPort: int32(first.ListenPort), Socket: opts.Socket, Kernel: opts.Kernel, Logger: log,
		MetricsAddr: opts.MetricsAddr, IPAMUse: func() (int, int) { return st.ipamUse(opts.NodeName) }, Forwarding: opts.Forwarding,
		Skipped: st.skippedByKind,
	})
	if err != nil {
		return err
	}
	defer a.stop()
	setServiceConfig := startServices(ctx, a, opts.Backend, opts.NodeName, log)
	// VXLAN: set up on the first pool that needs it, then kept in sync.
	var tunnel *dataplane.VXLAN
	syncTunnel := func() {
		if tunnel == nil && st.vxlanEnabled() {
			if tunnel, err = setupTunnel(ctx, opts.Backend, opts.NodeName, ip.Addr(), log); err != nil {
				log.Error("VXLAN setup; retrying on the next change", "err", err)
				tunnel = nil
				return
			}
		}
		if tunnel == nil {
			return
		}
		remotes, excluded := st.vxlanPlan(opts.NodeName, ip.Masked())
		if a.kernel != nil {
			if err := a.kernel.SetExcluded(ctx, excluded); err != nil {
				return // shutting down, or kernel sync failed (reported by run)
			}
		}
		if err := tunnel.Sync(remotes); err != nil {
			log.Error("VXLAN sync", "err", err)
		}
	}
	apply := func(res mesh.Result) {
		if err := a.speaker.SetExportRanges(ctx, st.exportRanges()); err != nil {
			log.Error("applying pool export ranges", "err", err)
		}
		if err := a.speaker.SetReflect(ctx, st.isReflector(opts.NodeName)); err != nil {
			log.Error("applying route reflection", "err", err)
		}
		// The node's confirmed blocks are originated with a blackhole each;
		// addresses it borrowed from other nodes' blocks go out as /32s.
		own, borrowed := st.nodeRoutes(opts.NodeName)
		originate := slices.Clone(own)
		for _, a := range borrowed {
			originate = append(originate, netip.PrefixFrom(a, a.BitLen()))
		}
		if err := a.speaker.SetOriginated(ctx, originate); err != nil {
			log.Error("originating the node's blocks", "err", err)
		}
		if a.kernel != nil {
			a.kernel.SetBlackholes(own)
		}
		syncTunnel()
		setServiceConfig(st.snapshot(datastore.KindBGPConfiguration))
		problems := st.leftOut()
		for _, p := range res.Problems {
			problems = append(problems, p.Error())
		}
		if changed := a.api.setProblems(problems); changed {
			for _, p := range problems {
				log.Error("datastore object skipped", "problem", p)
			}
		}
		if err := a.speaker.SetPeers(ctx, res.Peers); err != nil {
			log.Error("applying peers", "err", err)
		}
		if res.ASN != first.ASN || res.ListenPort != first.ListenPort {
			log.Warn("AS number or listen port changed; takes effect after a restart", "as", res.ASN, "listenPort", res.ListenPort)
		}
	}
	a.startKernel(ctx) // before apply: SetExcluded waits for kernel sync
	apply(first)
	log.Info("petrel running", "node", opts.NodeName, "routerID", ip.Addr(), "as", first.ASN, "datastore", opts.Mode, "peers", len(first.Peers), "socket", opts.Socket)
	return a.run(ctx, opts.Ready, st.changed, func() { apply(mesh.Desired(st.input(opts.NodeName))) })
}

// storeState holds the latest snapshot of each watched kind.
type storeState struct {
	mu    sync.Mutex
	snaps map[datastore.Kind]datastore.Snapshot
	// skipped are the objects of each kind that cannot be decoded: left
	// out of snaps, shown in status and metrics.
	skipped map[datastore.Kind]datastore.Skipped
	// invalidPools are IPPools that decode but fail validation (a CIDR
	// that is not one): left out of snaps, so that nothing half-reads
	// them, and shown in status.
	invalidPools map[string]error
	changed      chan struct{} // one token: something changed since the last read
}

func newStoreState(ctx context.Context, b datastore.Backend, log *slog.Logger) *storeState {
	st := &storeState{snaps: map[datastore.Kind]datastore.Snapshot{}, skipped: map[datastore.Kind]datastore.Skipped{}, changed: make(chan struct{}, 1)}
	for _, kind := range watchedKinds {
		go datastore.Follow(ctx, b, kind, log.With("component", "datastore"), func(s datastore.Snapshot, bad datastore.Skipped) {
			var invalid map[string]error
			if kind == datastore.KindIPPool {
				s, invalid = validPools(s)
			}
			st.mu.Lock()
			st.snaps[kind] = s
			st.skipped[kind] = bad
			if kind == datastore.KindIPPool {
				st.invalidPools = invalid
			}
			st.mu.Unlock()
			select {
			case st.changed <- struct{}{}:
			default:
			}
		})
	}
	return st
}

// validPools splits a snapshot of IPPools into the valid ones and the
// validation errors of the others, by name.
func validPools(s datastore.Snapshot) (datastore.Snapshot, map[string]error) {
	valid := make(datastore.Snapshot, len(s))
	invalid := map[string]error{}
	for name, o := range s {
		if err := o.Validate(); err != nil {
			invalid[name] = err
			continue
		}
		valid[name] = o
	}
	return valid, invalid
}

// optionalKinds need not be listed before the node starts: open-source
// Calico's CRDs have no BFDConfiguration, and without one BFD runs on
// petrel's default timers (the list is retried, and used once it works).
var optionalKinds = map[datastore.Kind]bool{datastore.KindBFDConfiguration: true}

// waitSynced waits until every kind but the optional ones has been listed
// once.
func (st *storeState) waitSynced(ctx context.Context) error {
	for {
		st.mu.Lock()
		n := 0
		for kind := range st.snaps {
			if !optionalKinds[kind] {
				n++
			}
		}
		st.mu.Unlock()
		if n == len(watchedKinds)-len(optionalKinds) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-st.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (st *storeState) input(node string) mesh.Input {
	st.mu.Lock()
	defer st.mu.Unlock()
	in := mesh.Input{NodeName: node}
	for _, o := range sorted(st.snaps[datastore.KindNode]) {
		in.Nodes = append(in.Nodes, o.(*datastore.Node))
	}
	for _, o := range sorted(st.snaps[datastore.KindBGPPeer]) {
		in.Peers = append(in.Peers, o.(*datastore.BGPPeer))
	}
	for _, o := range sorted(st.snaps[datastore.KindBGPConfiguration]) {
		in.Configs = append(in.Configs, o.(*datastore.BGPConfiguration))
	}
	for _, o := range sorted(st.snaps[datastore.KindBFDConfiguration]) {
		in.BFDConfigs = append(in.BFDConfigs, o.(*datastore.BFDConfiguration))
	}
	in.Interfaces = localInterfaces()
	return in
}

// localInterfaces lists this node's interfaces and connected prefixes, for
// BFD's "directly connected" test; nil (the Node's subnets) if unreadable.
func localInterfaces() []mesh.Interface {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []mesh.Interface
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		mi := mesh.Interface{Name: ifc.Name}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				ip, _ := netip.AddrFromSlice(ipn.IP)
				ones, _ := ipn.Mask.Size()
				mi.Prefixes = append(mi.Prefixes, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
		out = append(out, mi)
	}
	return out
}

// leftOut lists the objects left out because they cannot be decoded or
// are invalid IPPools, each naming its kind, name and field, in a stable
// order.
func (st *storeState) leftOut() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for _, kind := range watchedKinds {
		for _, name := range slices.Sorted(maps.Keys(st.skipped[kind])) {
			out = append(out, st.skipped[kind][name].Error())
		}
	}
	for _, name := range slices.Sorted(maps.Keys(st.invalidPools)) {
		out = append(out, st.invalidPools[name].Error()+"; pool ignored")
	}
	return out
}

// skippedByKind counts the undecodable objects of each watched kind.
func (st *storeState) skippedByKind() map[datastore.Kind]int {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[datastore.Kind]int, len(watchedKinds))
	for _, kind := range watchedKinds {
		out[kind] = len(st.skipped[kind])
	}
	return out
}

// exportRanges are the enabled pools that allow BGP export: routes this
// node learns inside them may be advertised (calico_export_to_bgp_peers).
func (st *storeState) exportRanges() []netip.Prefix {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []netip.Prefix
	for _, o := range sorted(st.snaps[datastore.KindIPPool]) {
		pool := o.(*datastore.IPPool)
		if pool.Spec.Disabled || pool.Spec.DisableBGPExport {
			continue
		}
		if p, err := netip.ParsePrefix(pool.Spec.CIDR); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// nodeRoutes are this node's affine blocks and borrowed addresses.
func (st *storeState) nodeRoutes(node string) ([]netip.Prefix, []netip.Addr) {
	st.mu.Lock()
	defer st.mu.Unlock()
	var blocks []*datastore.IPAMBlock
	for _, o := range sorted(st.snaps[datastore.KindIPAMBlock]) {
		blocks = append(blocks, o.(*datastore.IPAMBlock))
	}
	var affinities []*datastore.BlockAffinity
	for _, o := range sorted(st.snaps[datastore.KindBlockAffinity]) {
		affinities = append(affinities, o.(*datastore.BlockAffinity))
	}
	return ipam.NodeRoutes(node, blocks, affinities)
}

// ipamUse counts this node's affine blocks and the addresses used in them.
func (st *storeState) ipamUse(node string) (blocks, used int) {
	own, _ := st.nodeRoutes(node)
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, p := range own {
		if b, ok := st.snaps[datastore.KindIPAMBlock][ipam.BlockName(p)].(*datastore.IPAMBlock); ok {
			for _, a := range b.Spec.Allocations {
				if a != nil {
					used++
				}
			}
		}
	}
	return len(own), used
}

// isReflector reports whether this node is a route reflector.
func (st *storeState) isReflector(node string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	n, ok := st.snaps[datastore.KindNode][node].(*datastore.Node)
	return ok && n.Spec.BGP != nil && n.Spec.BGP.RouteReflectorClusterID != ""
}

func sorted(s datastore.Snapshot) []datastore.Object {
	out := make([]datastore.Object, 0, len(s))
	for _, o := range s {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b datastore.Object) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}

// registerNode creates or updates this node's Node object with its BGP
// address, keeping every other field as it is (compare-and-swap, retried).
func registerNode(ctx context.Context, b datastore.Backend, name string, ip netip.Prefix, log *slog.Logger) error {
	for attempt := 0; ; attempt++ {
		obj, err := b.Get(ctx, datastore.KindNode, name)
		switch {
		case errors.Is(err, datastore.ErrNotFound):
			o, _ := datastore.New(datastore.KindNode)
			n := o.(*datastore.Node)
			n.Name = name
			n.Spec.BGP = &datastore.NodeBGPSpec{IPv4Address: ip.String()}
			if _, err = b.Create(ctx, n); err == nil {
				log.Info("registered node", "node", name, "ipv4Address", ip)
				return nil
			}
		case err == nil:
			n := obj.(*datastore.Node)
			if n.Spec.BGP == nil {
				n.Spec.BGP = &datastore.NodeBGPSpec{}
			}
			if n.Spec.BGP.IPv4Address == ip.String() {
				return nil
			}
			n.Spec.BGP.IPv4Address = ip.String()
			if _, err = b.Update(ctx, n); err == nil {
				log.Info("updated node address", "node", name, "ipv4Address", ip)
				return nil
			}
		}
		if attempt >= 10 || (!errors.Is(err, datastore.ErrConflict) && !errors.Is(err, datastore.ErrExists) && ctx.Err() != nil) {
			return fmt.Errorf("registering node %q: %w", name, err)
		}
		log.Warn("registering node; retrying", "node", name, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
}

// nodeIP resolves the IP setting: an explicit address (with its prefix
// length looked up on the local interfaces when missing) or "autodetect",
// the first global IPv4 address of an interface that is not a workload's
// (Calico's first-found).
func nodeIP(setting string) (netip.Prefix, error) {
	addrs, err := localPrefixes()
	if err != nil {
		return netip.Prefix{}, err
	}
	if setting == "" || setting == "autodetect" {
		for _, p := range addrs {
			if p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
				return p, nil
			}
		}
		return netip.Prefix{}, errors.New("IP=autodetect: no IPv4 address on any interface (set IP)")
	}
	if p, err := netip.ParsePrefix(setting); err == nil && p.Addr().Is4() {
		return p, nil
	}
	a, err := netip.ParseAddr(setting)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("IP=%q: not an IPv4 address (or autodetect)", setting)
	}
	for _, p := range addrs {
		if p.Addr() == a {
			return p, nil
		}
	}
	return netip.PrefixFrom(a, 32), nil
}

// localPrefixes lists the addresses of up interfaces, skipping Calico's
// workload interfaces, in interface order.
func localPrefixes() ([]netip.Prefix, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || strings.HasPrefix(ifc.Name, "cali") {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					ones, _ := ipn.Mask.Size()
					out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
				}
			}
		}
	}
	return out, nil
}
