package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/petrel-net/petrel/internal/netnsbuild"
)

// DefaultResources are applied to the lab's etcd before any node starts:
// the seed's IPPool.
const DefaultResources = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: CrossSubnet, ipipMode: Never, natOutgoing: true, nodeSelector: all(), allowedUses: [Workload, Tunnel]}
`

// DefaultIPv6Pool is added to them when a petrel node has an IPv6
// address: Calico's default IPv6 block size, routed natively.
const DefaultIPv6Pool = `---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv6-ippool}
spec: {cidr: "fd00:192:168::/112", blockSize: 122, vxlanMode: Never, ipipMode: Never, nodeSelector: all(), allowedUses: [Workload]}
`

// Options configure Up.
type Options struct {
	Petrel string    // the petrel binary the lab runs (default: this executable)
	Out    io.Writer // progress lines
	// ImageBinary is the (static) petrel binary a Kubernetes lab puts in
	// its petrel image (default: Petrel).
	ImageBinary string
	// DeployDir holds the crds/ and k8s/ manifests a Kubernetes lab
	// applies (default: the directory above the topology file's).
	DeployDir string
}

type builder struct {
	opts  Options
	topo  *Topology
	dir   string
	state State
	procs []*proc
	res   *resources // the etcd node's resources file (up only)
}

func (b *builder) step(format string, args ...any) {
	fmt.Fprintf(b.opts.Out, "[%s] %s\n", b.state.Name, fmt.Sprintf(format, args...))
}

// Up builds the lab described by the topology file.
func Up(ctx context.Context, topoPath string, opts Options) error {
	topo, err := LoadTopology(topoPath)
	if err != nil {
		return err
	}
	res, err := loadResources(topoPath, topo)
	if err != nil {
		return fmt.Errorf("%s: %w", topoPath, err)
	}
	if os.Geteuid() != 0 {
		return errors.New("petrel lab needs root (network namespaces)")
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Petrel == "" {
		if opts.Petrel, err = os.Executable(); err != nil {
			return err
		}
	}
	if Exists(topo.Name) {
		return fmt.Errorf("lab %s already exists (remove it with: petrel lab down %s)", topo.Name, topo.Name)
	}
	b := &builder{opts: opts, topo: topo, dir: Dir(topo.Name), res: res}
	b.state = State{Name: topo.Name, Topology: topoPath, Petrel: opts.Petrel}
	for _, d := range []string{b.dir, filepath.Join(b.dir, "pids"), filepath.Join(b.dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if raw, err := os.ReadFile(topoPath); err == nil {
		_ = os.WriteFile(filepath.Join(b.dir, "topology.clab.yml"), raw, 0o644)
	}
	if err := b.save(); err != nil {
		return err
	}
	if err := b.build(ctx); err != nil {
		return fmt.Errorf("%w\n(the lab is left as it is for inspection: petrel lab status %s; remove it with: petrel lab down %s)", err, topo.Name, topo.Name)
	}
	return nil
}

func (b *builder) build(ctx context.Context) error {
	if err := b.createNamespaces(); err != nil {
		return err
	}
	if err := b.createLinks(); err != nil {
		return err
	}
	if err := b.addLinkAddrs(); err != nil {
		return err
	}
	if err := b.runExecs(); err != nil {
		return err
	}
	b.recordAddresses()
	if err := b.save(); err != nil {
		return err
	}
	if b.topo.Kube() {
		if err := b.buildKube(ctx); err != nil {
			return err
		}
		return b.ready()
	}
	if err := b.startEtcd(); err != nil {
		return err
	}
	if n := b.node("etcd"); b.topo.Topology.Nodes[n.Name].KubeAPIServer() {
		if err := b.startKubeAPIServer(ctx, n); err != nil {
			return err
		}
	}
	if err := b.applyResources(); err != nil {
		return err
	}
	if err := b.applyKubeObjects(ctx); err != nil {
		return err
	}
	if err := b.startDaemons(); err != nil {
		return err
	}
	if err := b.waitSessions(ctx); err != nil {
		return err
	}
	if err := b.waitLoadBalancers(ctx); err != nil {
		return err
	}
	if err := b.addPods(); err != nil {
		return err
	}
	if err := b.waitPings(); err != nil {
		return err
	}
	return b.ready()
}

// ready records and says that the lab is up.
func (b *builder) ready() error {
	b.state.Ready = true
	if err := b.save(); err != nil {
		return err
	}
	b.step("ready: %d namespaces, %d petrel nodes, %d pods (petrel lab status %s; petrel lab down %s)",
		len(b.state.Nodes), len(b.petrels())+len(b.kubeNodes()), len(b.state.Pods), b.state.Name, b.state.Name)
	return nil
}

// createNamespaces gives every node its namespace, recorded in the state
// as soon as it exists: a bridge node gets its br0, the others forward
// IPv4 and use their IPv6 addresses at once (no duplicate address
// detection: a tentative address cannot be bound). IPv6 forwarding is on
// in every linux node but the petrel nodes, where the daemon turns it on
// (ipv6Forwarding Auto).
func (b *builder) createNamespaces() error {
	names := b.topo.NodeNames()
	b.step("creating %d namespaces", len(names))
	for _, name := range names {
		n := b.topo.Topology.Nodes[name]
		ns := NSName(b.state.Name, name)
		if err := netnsbuild.Create(ns); err != nil {
			return err
		}
		b.state.Nodes = append(b.state.Nodes, NodeState{Name: name, Kind: n.Kind, Role: n.Role(), NS: ns})
		if err := b.save(); err != nil {
			return err
		}
		if n.Kind == "bridge" {
			if err := netnsbuild.Bridge(ns, "br0"); err != nil {
				return err
			}
			if err := netnsbuild.Up(ns, "br0"); err != nil {
				return err
			}
			continue
		}
		sysctls := [][2]string{{"net/ipv4/ip_forward", "1"}, {"net/ipv6/conf/all/accept_dad", "0"}, {"net/ipv6/conf/default/accept_dad", "0"}}
		if n.Role() != "node" && n.Role() != RoleKubeNode {
			sysctls = append(sysctls, [2]string{"net/ipv6/conf/all/forwarding", "1"})
		}
		for _, kv := range sysctls {
			if err := netnsbuild.Sysctl(ns, kv[0], kv[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// addLinkAddrs sets the links' ipv4 and ipv6 addresses.
func (b *builder) addLinkAddrs() error {
	for _, l := range b.topo.Topology.Links {
		eps, _ := l.Parse()
		addrs, _ := b.topo.linkAddrs(l, eps)
		for _, a := range addrs {
			if err := netnsbuild.AddAddr(NSName(b.state.Name, a.Node), a.If, a.Prefix); err != nil {
				return fmt.Errorf("node %s: %s %s: %w", a.Node, a.If, a.Prefix, err)
			}
		}
	}
	return nil
}

func (b *builder) createLinks() error {
	b.step("creating %d links", len(b.topo.Topology.Links))
	for _, l := range b.topo.Topology.Links {
		eps, _ := l.Parse()
		if err := b.link(eps[0], eps[1]); err != nil {
			return err
		}
	}
	return nil
}

// runExecs runs each node's exec commands (addresses, routes) in its
// namespace, once every link exists.
func (b *builder) runExecs() error {
	for _, name := range b.topo.NodeNames() {
		for _, c := range b.topo.Topology.Nodes[name].Exec {
			if _, err := inNS(NSName(b.state.Name, name), "sh", "-c", c); err != nil {
				return fmt.Errorf("node %s: exec: %w", name, err)
			}
		}
	}
	return nil
}

// recordAddresses notes each linux node's first global IPv4 and IPv6
// addresses, the ones its daemons use.
func (b *builder) recordAddresses() {
	for i := range b.state.Nodes {
		n := &b.state.Nodes[i]
		if n.Kind != "linux" {
			continue
		}
		if p, err := netnsbuild.GlobalIPv4(n.NS); err == nil {
			n.Addr = p.String()
		}
		if p, err := netnsbuild.GlobalIPv6(n.NS); err == nil {
			n.Addr6 = p.String()
		}
	}
}

// startDaemons starts the routers (BIRD, FRR) before the petrel nodes
// that peer with them.
func (b *builder) startDaemons() error {
	for i := range b.state.Nodes {
		switch b.state.Nodes[i].Role {
		case "bird":
			if err := b.startBird(&b.state.Nodes[i]); err != nil {
				return err
			}
		case "frr":
			if err := b.startFRR(&b.state.Nodes[i]); err != nil {
				return err
			}
		}
	}
	for _, n := range b.petrels() {
		if err := b.startPetrel(n); err != nil {
			return err
		}
	}
	return b.save()
}

func (b *builder) kind(node string) string { return b.topo.Topology.Nodes[node].Kind }

// link creates a veth between two nodes; a bridge node's end becomes a
// port of its br0. Both ends are created directly in their namespaces.
func (b *builder) link(a, z Endpoint) error {
	if b.kind(a.Node) != "bridge" && b.kind(z.Node) == "bridge" {
		a, z = z, a
	}
	aNS, zNS := NSName(b.state.Name, a.Node), NSName(b.state.Name, z.Node)
	if err := netnsbuild.Veth(aNS, a.If, zNS, z.If); err != nil {
		return err
	}
	if b.kind(a.Node) == "bridge" {
		if err := netnsbuild.SetMaster(aNS, a.If, "br0"); err != nil {
			return err
		}
	}
	for _, e := range [][2]string{{aNS, a.If}, {zNS, z.If}} {
		if err := netnsbuild.Up(e[0], e[1]); err != nil {
			return err
		}
	}
	return nil
}

// petrels are the petrel nodes, in state order.
func (b *builder) petrels() []*NodeState {
	var res []*NodeState
	for i := range b.state.Nodes {
		if b.state.Nodes[i].Role == "node" {
			res = append(res, &b.state.Nodes[i])
		}
	}
	return res
}

func (b *builder) node(role string) *NodeState {
	for i := range b.state.Nodes {
		if b.state.Nodes[i].Role == role {
			return &b.state.Nodes[i]
		}
	}
	return nil
}

// petrelCmd runs a petrel client command inside ns against the lab's
// datastore.
func (b *builder) petrelCmd(ns string, env []string, args ...string) (string, error) {
	return b.state.petrelCmd(ns, env, args...)
}

func (b *builder) applyResources() error {
	docs := DefaultResources
	what := "IPPool default-ipv4-ippool 192.168.0.0/16"
	if b.ipv6() {
		docs += DefaultIPv6Pool
		what += ", IPPool default-ipv6-ippool fd00:192:168::/112"
	}
	for _, n := range b.state.Nodes {
		if n.Role != "bird" && n.Role != "frr" {
			continue
		}
		if n.Addr != "" {
			docs += bgpPeerDoc(strings.ToLower(n.Name), n.Addr)
		}
		if n.Addr6 != "" && n.Role == "bird" { // the lab's FRR peers over IPv4 only
			docs += bgpPeerDoc(strings.ToLower(n.Name)+"-v6", n.Addr6)
		}
	}
	if b.topo.MeshOff() {
		docs += "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n"
		what += ", node-to-node mesh off"
	}
	if b.res != nil && b.res.calico != "" {
		docs += b.res.calico
		what += ", " + b.res.file
	}
	b.step("applying the default resources (%s)", what)
	path := filepath.Join(b.dir, "resources.yaml")
	if err := os.WriteFile(path, []byte(docs), 0o644); err != nil {
		return err
	}
	_, err := b.petrelCmd(b.state.datastoreNode().NS, nil, "apply", "-f", path)
	return err
}

// bgpPeerDoc is a global BGPPeer for a router of the lab (iBGP).
func bgpPeerDoc(name, addr string) string {
	return fmt.Sprintf("---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: %s}\nspec: {peerIP: \"%s\", asNumber: 64512}\n", name, hostOf(addr))
}

// ipv6 reports whether a petrel node has an IPv6 address: the lab then
// has an IPv6 pool and dual-stack (or IPv6-only) pods.
func (b *builder) ipv6() bool {
	for _, n := range b.petrels() {
		if b.petrelAddr6(n) != "" {
			return true
		}
	}
	return false
}

func (b *builder) waitSessions(ctx context.Context) error {
	petrels := b.petrels()
	if len(petrels) == 0 {
		return nil
	}
	b.step("waiting for BGP sessions")
	err := poll(90*time.Second, 250*time.Millisecond, func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, n := range petrels {
			ps, err := peers(n.Socket)
			if err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
			if len(ps) == 0 && len(petrels) > 1 {
				return fmt.Errorf("%s: no peers yet", n.Name)
			}
			if e := established(ps); e != len(ps) {
				return fmt.Errorf("%s: %d of %d sessions Established", n.Name, e, len(ps))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("BGP sessions: %w", err)
	}
	for _, n := range petrels {
		ps, _ := peers(n.Socket)
		b.step("%s: %d sessions Established", n.Name, len(ps))
	}
	return nil
}

// addPods plumbs each petrel node's pods with the families of the node's
// addresses: dual-stack pods on a dual-stack node, IPv6-only ones on an
// IPv6-only node.
func (b *builder) addPods() error {
	for _, n := range b.state.Nodes {
		count := b.topo.Topology.Nodes[n.Name].Pods()
		if count == 0 {
			continue
		}
		v4, v6 := b.petrelAddr(&n) != "", b.petrelAddr6(&n) != ""
		if has, err := netnsbuild.HasDefaultRoute(n.NS); v4 && err == nil && !has {
			b.step("warning: %s has no default route; its pods cannot ARP for 169.254.1.1 (add one with exec)", n.Name)
		}
		for i := 1; i <= count; i++ {
			pod := fmt.Sprintf("%s-pod%d", n.Name, i)
			ns := NSName(b.state.Name, pod)
			if err := netnsbuild.Create(ns); err != nil {
				return err
			}
			b.state.Pods = append(b.state.Pods, PodState{Name: "default/" + pod, Node: n.Name, NS: ns})
			if err := b.save(); err != nil {
				return err
			}
			out, err := b.petrelCmd(n.NS, []string{"NODENAME=" + n.Name}, "workload", "add", "--name", "default/"+pod, "--netns", ns, fmt.Sprintf("--ipv4=%v", v4), fmt.Sprintf("--ipv6=%v", v6))
			if err != nil {
				return fmt.Errorf("pod %s: %w", pod, err)
			}
			p := &b.state.Pods[len(b.state.Pods)-1]
			for _, line := range strings.Fields(out) { // one address per family, IPv4 first
				if a, err := netip.ParseAddr(line); err == nil && a.Is4() {
					p.Addr = line
				} else if err == nil {
					p.Addr6 = line
				}
			}
			b.step("pod default/%s on %s: %s", pod, n.Name, strings.Join(strings.Fields(out), ", "))
			if err := b.save(); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitPings waits until every pod reaches every other pod over each
// family they have.
func (b *builder) waitPings() error {
	for _, family := range Families {
		if len(PodsOf(b.state.Pods, family)) < 2 {
			continue
		}
		b.step("waiting until every pod reaches every other pod over IPv%d", family)
		err := poll(60*time.Second, 500*time.Millisecond, func() error {
			var failed []string
			for _, c := range PingMatrix(b.state.Pods, family, 1) {
				if c.Loss != 0 {
					failed = append(failed, c.From+"->"+c.To)
				}
			}
			if len(failed) > 0 {
				sort.Strings(failed)
				if len(failed) > 6 {
					failed = append(failed[:6], fmt.Sprintf("and %d more", len(failed)-6))
				}
				return fmt.Errorf("no answer: %s", strings.Join(failed, ", "))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("pod connectivity over IPv%d: %w", family, err)
		}
	}
	return nil
}
