package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/mesh"
	"github.com/petrel-net/petrel/nodeaddr"
)

// DatastoreOptions configure RunDatastore; the command fills them from
// calico-node's environment (NODENAME, DATASTORE_TYPE, IP, ...).
type DatastoreOptions struct {
	NodeName string
	Backend  datastore.Backend
	Mode     string // the datastore type, for status
	// IPv4 and IPv6 are the node's address settings: $IP and $IP6 with
	// their autodetection methods (see nodeaddr).
	IPv4, IPv6 nodeaddr.Setting
	Socket     string
	Kernel     config.Kernel
	Logger     *slog.Logger
	Ready      chan<- struct{}
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
	// A setting that needs a restart cancels ctx with a *RestartInPlace:
	// everything stops as on SIGTERM and the cause is returned to Main.
	ctx, restart := context.WithCancelCause(ctx)
	defer restart(nil)
	var routerID netip.Addr
	addrs, err := registerNode(ctx, opts.Backend, opts.NodeName, func(current nodeaddr.Addrs) (nodeaddr.Addrs, error) {
		addrs, err := nodeaddr.Host{Log: log}.ResolveNode(ctx, opts.IPv4, opts.IPv6, current)
		if err == nil {
			// calico-node's BIRD takes the router ID from the IPv4
			// address; an IPv6-only node needs CALICO_ROUTER_ID.
			routerID, err = config.RouterID(opts.RouterID, opts.NodeName, addrs.IPv4.Addr())
		}
		return addrs, err
	}, log)
	if err != nil {
		return err
	}
	ip := addrs.IPv4 // invalid on an IPv6-only node
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
		d := computeDesired(st.read(), self{Name: opts.NodeName, Subnet: ip.Masked(), Subnet6: addrs.IPv6.Masked(), Interfaces: localInterfaces(), Secret: secret})
		return &d
	}
	first := desiredNow()

	var bind []netip.Addr
	if first.BindNodeIP {
		// Each of the node's BGP addresses: a dual-stack node's IPv6
		// sessions arrive on its IPv6 address.
		for _, a := range []netip.Addr{ip.Addr(), addrs.IPv6.Addr()} {
			if a.IsValid() {
				bind = append(bind, a)
			}
		}
	}
	a, err := startAgent(ctx, agentConfig{
		ListenAddresses: bind,
		NodeName:        opts.NodeName, Mode: opts.Mode, RouterID: routerID, ASN: first.ASN,
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
	targets.restart = func(r *RestartInPlace) { restart(r) }
	targets.services = startServices(ctx, a, client, opts.Backend, opts.NodeName, log)
	targets.ipip, targets.peerRoutes = newIPIPDeps(opts.Backend, opts.NodeName, ip.Addr()), openPeerRoutes
	loop := datastoreLoop(targets, first, func(ctx context.Context, fam vxlanFamily, pools []netip.Prefix) (tunnel, error) {
		// planVXLAN enables a family only where the node has its address.
		underlay := addrs.IPv4
		if fam.v6 {
			underlay = addrs.IPv6
		}
		t, err := setupTunnel(ctx, opts.Backend, opts.NodeName, fam, underlay.Addr(), pools, log)
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
	err = a.run(ctx, opts.Ready, st.changed, func() { reconcile(desiredNow()) })
	var again *RestartInPlace
	if errors.As(context.Cause(ctx), &again) {
		return again
	}
	return err
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
// addresses, keeping every other field as it is (compare-and-swap,
// retried). resolve turns the addresses the Node holds (none for a new
// Node) into the ones to write; it runs once, and its error stops here.
// An invalid address clears its field.
func registerNode(ctx context.Context, b datastore.Backend, name string, resolve func(current nodeaddr.Addrs) (nodeaddr.Addrs, error), log *slog.Logger) (nodeaddr.Addrs, error) {
	var addrs nodeaddr.Addrs
	resolved := false
	for attempt := 0; ; attempt++ {
		obj, err := b.Get(ctx, datastore.KindNode, name)
		var n *datastore.Node
		switch {
		case errors.Is(err, datastore.ErrNotFound):
			o, _ := datastore.New(datastore.KindNode)
			n = o.(*datastore.Node)
			n.Name = name
		case err == nil:
			n = obj.(*datastore.Node)
		}
		if n != nil && !resolved {
			var current nodeaddr.Addrs
			current.IPv4, _ = n.IPv4()
			current.IPv6, _ = n.IPv6()
			if addrs, err = resolve(current); err != nil {
				return nodeaddr.Addrs{}, fmt.Errorf("node %q: %w", name, err)
			}
			resolved = true
		}
		if n != nil {
			if err = writeNodeAddrs(ctx, b, n, obj == nil, addrs); err == nil {
				log.Info("registered node", "node", name, "ipv4Address", n.Spec.BGP.IPv4Address, "ipv6Address", n.Spec.BGP.IPv6Address)
				return addrs, nil
			}
		}
		if attempt >= 10 || (!errors.Is(err, datastore.ErrConflict) && !errors.Is(err, datastore.ErrExists) && ctx.Err() != nil) {
			return nodeaddr.Addrs{}, fmt.Errorf("registering node %q: %w", name, err)
		}
		log.Warn("registering node; retrying", "node", name, "err", err)
		select {
		case <-ctx.Done():
			return nodeaddr.Addrs{}, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
}

// writeNodeAddrs sets n's spec.bgp.ipv4Address and ipv6Address (an
// invalid address clears its field) and creates or updates n, unless it
// already says so.
func writeNodeAddrs(ctx context.Context, b datastore.Backend, n *datastore.Node, create bool, addrs nodeaddr.Addrs) error {
	if n.Spec.BGP == nil {
		n.Spec.BGP = &datastore.NodeBGPSpec{}
	}
	v4, v6 := prefixString(addrs.IPv4), prefixString(addrs.IPv6)
	if !create && n.Spec.BGP.IPv4Address == v4 && n.Spec.BGP.IPv6Address == v6 {
		return nil
	}
	n.Spec.BGP.IPv4Address, n.Spec.BGP.IPv6Address = v4, v6
	var err error
	if create {
		_, err = b.Create(ctx, n)
	} else {
		_, err = b.Update(ctx, n)
	}
	return err
}

// prefixString is p as a Node field: "" when p is invalid.
func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}
