package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/datastore"
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
	// RouterID is CALICO_ROUTER_ID: "" (the node's address), an address
	// or "hash".
	RouterID string
	// Level, when set, follows BGPConfiguration logSeverityScreen live;
	// EnvLevel is the level when no BGPConfiguration sets one.
	Level    *slog.LevelVar
	EnvLevel slog.Level
}

// RunDatastore runs a node whose BGP configuration comes from the
// datastore, as calico-node's does: it registers its Node, then follows
// Nodes, BGPPeers, BGPConfigurations, IPPools and IPAM blocks and, on
// every change, brings each concern to what they describe (see
// datastoreLoop). A datastore outage changes nothing; the node resyncs
// when the store returns.
func RunDatastore(ctx context.Context, opts DatastoreOptions) error {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	ip, err := nodeIP(opts.IP)
	if err != nil {
		return err
	}
	routerID, err := config.RouterID(opts.RouterID, opts.NodeName, ip.Addr())
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
	client, err := kubeClient()
	if err != nil {
		client = nil
		log.Info("no Kubernetes API: Services and BGP passwords from Secrets are off", "err", err)
	}
	secret := startSecrets(ctx, client, st.poke, log)
	desiredNow := func() *desired {
		d := computeDesired(st.read(), self{Name: opts.NodeName, Subnet: ip.Masked(), Interfaces: localInterfaces(), Secret: secret})
		return &d
	}
	first := desiredNow()

	var bind netip.Addr
	if first.BindNodeIP {
		bind = ip.Addr()
	}
	a, err := startAgent(ctx, agentConfig{
		ListenAddress: bind,
		NodeName:      opts.NodeName, Mode: opts.Mode, RouterID: routerID, ASN: first.ASN,
		ListenPort: int32(first.ListenPort), Socket: opts.Socket, Kernel: opts.Kernel, Logger: log,
		MetricsAddr: opts.MetricsAddr, IPAMUse: func() (int, int) { return st.ipamUse(opts.NodeName) }, Forwarding: opts.Forwarding,
		Skipped: st.skippedByKind,
	})
	if err != nil {
		return err
	}
	defer a.stop()
	a.api.snapshot = st.read
	targets := a.targets()
	targets.level, targets.envLevel = opts.Level, opts.EnvLevel
	targets.services = startServices(ctx, a, client, opts.Backend, opts.NodeName, log)
	targets.ipip, targets.peerRoutes = newIPIPDeps(opts.Backend, opts.NodeName, ip.Addr()), openPeerRoutes
	loop := datastoreLoop(targets, first, func(ctx context.Context) (tunnel, error) {
		t, err := setupTunnel(ctx, opts.Backend, opts.NodeName, ip.Addr(), log)
		if err != nil {
			return nil, err // not a nil *VXLAN in a non-nil interface
		}
		return t, nil
	})
	reconcile := func(d *desired) {
		if err := loop.Reconcile(ctx, d); err != nil {
			log.Error("applying the datastore's state; retried on the next change", "err", err)
		}
	}
	a.startKernel(ctx) // before the first pass: the VXLAN hand-off waits for kernel sync
	reconcile(first)
	log.Info("petrel running", "node", opts.NodeName, "routerID", routerID, "as", first.ASN, "datastore", opts.Mode, "peers", len(first.Peers), "socket", opts.Socket)
	return a.run(ctx, opts.Ready, st.changed, func() { reconcile(desiredNow()) })
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
