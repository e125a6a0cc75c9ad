// Package lab builds a petrel lab on this machine from a containerlab
// topology file: network namespaces joined by veth links and bridges
// (with IPv4 addresses, IPv6 ones or both: dual-stack labs get an IPv6
// pool, daemons with IP6 and pods of both families), an
// etcd for the datastore (optionally a kube-apiserver beside it, for
// Services), one `petrel daemon` per petrel node, optional BIRD routers,
// and pods plumbed by `petrel workload add`. It is the
// long-lived, command-line counterpart of e2e/harness: everything it makes
// is marked (namespace prefix "plab-<name>-", state directory
// /var/run/petrel-lab/<name>/, environment PETREL_LAB=<name> on every
// process) so that `petrel lab down` finds and removes it, also after an
// `up` that crashed halfway. Nothing is ever created in the root namespace.
package lab

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// Labels on a topology node that the lab interprets.
const (
	// LabelRole says what the lab runs in a kind linux node:
	// "node" (a petrel daemon), "etcd" (the lab's datastore) or "bird"
	// (BIRD 2 peering with every petrel node), "frr" (FRR's bgpd, the
	// same); in a Kubernetes lab "kube-control-plane" (etcd and the
	// control plane) and "kube-node" (containerd and a kubelet, petrel
	// coming as the DaemonSet). Nodes without it are plain namespaces
	// (hosts, routers configured by exec).
	LabelRole = "petrel"
	// LabelPods is how many pods to create on a petrel node ("2"); on a
	// kube-control-plane node, the replicas of the lab's test Deployment.
	LabelPods = "pods"
	// LabelRR "true" on a bird node makes that BIRD a route reflector for
	// every petrel node ("rr client"); the node-to-node mesh is then
	// turned off (BGPConfiguration default, nodeToNodeMeshEnabled: false).
	LabelRR = "route-reflector"
	// LabelKubeAPIServer "true" on the etcd node also runs a
	// kube-apiserver there, on the same etcd: the petrel daemons get its
	// KUBECONFIG and read Services from it (docs/services.md), while
	// Calico's resources stay in etcd. No kubelets: Services and
	// EndpointSlices come from the resources file.
	LabelKubeAPIServer = "kube-apiserver"
	// LabelResources on the etcd node names a YAML file (relative to the
	// topology file) applied once the datastore runs: projectcalico.org
	// resources with `petrel apply`, Kubernetes objects (Services,
	// EndpointSlices) to the kube-apiserver.
	LabelResources = "resources"
)

// Topology is the subset of the containerlab topology format the lab reads.
// Fields it does not know (mgmt, image, ...) are accepted and ignored.
type Topology struct {
	Name     string `json:"name"`
	Topology struct {
		Nodes map[string]*TopoNode `json:"nodes"`
		Links []TopoLink           `json:"links"`
	} `json:"topology"`
}

// TopoNode is one node of the topology.
type TopoNode struct {
	Kind   string            `json:"kind"`
	Image  string            `json:"image,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	Env    map[string]string `json:"env,omitempty"`
	// Exec are shell commands run inside the node's namespace once the
	// links exist (containerlab's exec): addresses, routes.
	Exec []string `json:"exec,omitempty"`
}

// TopoLink is a point-to-point link, endpoints "node:interface". IPv4 and
// IPv6 are containerlab's link addresses: one CIDR per endpoint, in
// endpoint order ("" for an end without one, such as a bridge port), set
// on the interfaces before the nodes' exec commands run.
type TopoLink struct {
	Endpoints []string `json:"endpoints"`
	IPv4      []string `json:"ipv4,omitempty"`
	IPv6      []string `json:"ipv6,omitempty"`
}

// Endpoint is one side of a link.
type Endpoint struct{ Node, If string }

var (
	// Lab names contain no '-', so "plab-<name>-" prefixes never overlap.
	labNameRE  = regexp.MustCompile(`^[A-Za-z0-9_]{1,20}$`)
	nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,30}$`)
	ifNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)
	dupKeyRE   = regexp.MustCompile(`line \d+: mapping key .* already defined at line \d+`)
)

// LoadTopology reads and checks a .clab.yml file.
func LoadTopology(path string) (*Topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("topology %s: no such file", path)
		}
		return nil, fmt.Errorf("topology %s: %w", path, err)
	}
	t, err := ParseTopology(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseTopology parses and checks a topology.
func ParseTopology(b []byte) (*Topology, error) {
	// sigs.k8s.io/yaml keeps the last of two equal keys; yaml.v3 refuses
	// them ("mapping key "node1" already defined at line 12"), which is
	// how a duplicated node name is caught.
	var raw any
	if err := yamlv3.Unmarshal(b, &raw); err != nil {
		if m := dupKeyRE.FindString(err.Error()); m != "" {
			return nil, fmt.Errorf("topology: %s (a duplicate name)", m)
		}
		return nil, fmt.Errorf("topology: %w", err)
	}
	var t Topology
	if err := yaml.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	if !labNameRE.MatchString(t.Name) {
		return nil, fmt.Errorf("topology: name %q: want 1-20 letters, digits or '_' (no '-')", t.Name)
	}
	if len(t.Topology.Nodes) == 0 {
		return nil, fmt.Errorf("topology: no nodes")
	}
	var etcds, cps []string
	for name, n := range t.Topology.Nodes {
		if n == nil {
			n = &TopoNode{Kind: "linux"}
			t.Topology.Nodes[name] = n
		}
		if err := checkNode(name, n); err != nil {
			return nil, fmt.Errorf("topology: %w", err)
		}
		switch n.Role() {
		case "etcd":
			etcds = append(etcds, name)
		case RoleKubeControlPlane:
			cps = append(cps, name)
		}
	}
	if err := t.checkPodNames(); err != nil {
		return nil, err
	}
	if t.Kube() {
		if err := t.checkKube(cps); err != nil {
			return nil, err
		}
	} else if len(etcds) != 1 {
		sort.Strings(etcds)
		return nil, fmt.Errorf("topology: want exactly one node labelled %s: etcd, have %d %v", LabelRole, len(etcds), etcds)
	}
	if err := t.checkLinks(); err != nil {
		return nil, err
	}
	return &t, nil
}

// checkNode checks a node's name, kind and labels, and defaults its kind
// to linux.
func checkNode(name string, n *TopoNode) error {
	if !nodeNameRE.MatchString(name) {
		return fmt.Errorf("node name %q: want letters, digits, '-', '_' (at most 31)", name)
	}
	if n.Kind == "" {
		n.Kind = "linux"
	}
	switch n.Kind {
	case "linux", "bridge":
	default:
		return fmt.Errorf("node %s: kind %q not supported (linux, bridge)", name, n.Kind)
	}
	role := n.Role()
	switch role {
	case "", "node", "bird", "frr", "etcd", RoleKubeControlPlane, RoleKubeNode:
	default:
		return fmt.Errorf("node %s: label %s: %q (want node, etcd, bird, frr, %s or %s)", name, LabelRole, role, RoleKubeControlPlane, RoleKubeNode)
	}
	if role != "" && n.Kind != "linux" {
		return fmt.Errorf("node %s: label %s needs kind linux", name, LabelRole)
	}
	if v, ok := n.Labels[LabelRR]; ok && ((role != "bird" && role != "frr") || (v != "true" && v != "false")) {
		return fmt.Errorf("node %s: label %s: %q (want \"true\" or \"false\", on a node labelled %s: bird or frr)", name, LabelRR, v, LabelRole)
	}
	if v, ok := n.Labels[LabelKubeAPIServer]; ok && (role != "etcd" || (v != "true" && v != "false")) {
		return fmt.Errorf("node %s: label %s: %q (want \"true\" or \"false\", on the node labelled %s: etcd)", name, LabelKubeAPIServer, v, LabelRole)
	}
	if v, ok := n.Labels[LabelResources]; ok && (role != "etcd" || !(strings.HasSuffix(v, ".yaml") || strings.HasSuffix(v, ".yml"))) {
		return fmt.Errorf("node %s: label %s: %q (want a .yaml file, on the node labelled %s: etcd)", name, LabelResources, v, LabelRole)
	}
	if p, ok := n.Labels[LabelPods]; ok {
		if v, err := strconv.Atoi(p); err != nil || v < 0 || v > 50 || (role != "node" && role != RoleKubeControlPlane) {
			return fmt.Errorf("node %s: label pods: %q (want 0-50, on a petrel or kube-control-plane node)", name, p)
		}
	}
	return nil
}

// checkPodNames refuses a node called like another node's pod: pods get
// namespaces "<node>-podI".
func (t *Topology) checkPodNames() error {
	for name, n := range t.Topology.Nodes {
		if n.Role() != "node" {
			continue // a control plane's pods are a Deployment's
		}
		for i := 1; i <= n.Pods(); i++ {
			if _, ok := t.Topology.Nodes[fmt.Sprintf("%s-pod%d", name, i)]; ok {
				return fmt.Errorf("topology: node %s-pod%d: clashes with pod %d of node %s", name, i, i, name)
			}
		}
	}
	return nil
}

// checkLinks checks that every link joins two known nodes, uses each
// interface once and does not join two bridges.
func (t *Topology) checkLinks() error {
	used := map[Endpoint]bool{}
	for i, l := range t.Topology.Links {
		eps, err := l.Parse()
		if err != nil {
			return fmt.Errorf("topology: links[%d]: %w", i, err)
		}
		for _, ep := range eps {
			if _, ok := t.Topology.Nodes[ep.Node]; !ok {
				return fmt.Errorf("topology: links[%d]: endpoint %s:%s: unknown node %q", i, ep.Node, ep.If, ep.Node)
			}
			if ep.If == "br0" && t.Topology.Nodes[ep.Node].Kind == "bridge" {
				return fmt.Errorf("topology: links[%d]: %s:br0: br0 is the bridge itself, name the port otherwise", i, ep.Node)
			}
			if used[ep] {
				return fmt.Errorf("topology: links[%d]: %s:%s used twice", i, ep.Node, ep.If)
			}
			used[ep] = true
		}
		if t.Topology.Nodes[eps[0].Node].Kind == "bridge" && t.Topology.Nodes[eps[1].Node].Kind == "bridge" {
			return fmt.Errorf("topology: links[%d]: bridge to bridge is not supported", i)
		}
		if _, err := t.linkAddrs(l, eps); err != nil {
			return fmt.Errorf("topology: links[%d]: %w", i, err)
		}
	}
	return nil
}

// linkAddr is an address to set on one end of a link.
type linkAddr struct {
	Endpoint
	Prefix netip.Prefix
}

// linkAddrs checks a link's ipv4 and ipv6 lists (one CIDR or "" per
// endpoint, of the list's family, none on a bridge port) and returns the
// addresses to set.
func (t *Topology) linkAddrs(l TopoLink, eps [2]Endpoint) ([]linkAddr, error) {
	var res []linkAddr
	for _, fam := range []struct {
		field string
		list  []string
		is4   bool
	}{{"ipv4", l.IPv4, true}, {"ipv6", l.IPv6, false}} {
		if fam.list == nil {
			continue
		}
		if len(fam.list) != 2 {
			return nil, fmt.Errorf("%s: want one address per endpoint (2, \"\" for none), have %d", fam.field, len(fam.list))
		}
		for j, s := range fam.list {
			if s == "" {
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil || p.Addr().Is4() != fam.is4 || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				return nil, fmt.Errorf("%s[%d]: %q: want an %s address with its prefix length (%s)", fam.field, j, s, map[bool]string{true: "IPv4", false: "IPv6"}[fam.is4], map[bool]string{true: "10.0.0.1/24", false: "fd00:10::1/64"}[fam.is4])
			}
			if !p.Addr().IsGlobalUnicast() || p.Masked() == p && p.Bits() < p.Addr().BitLen() {
				return nil, fmt.Errorf("%s[%d]: %q: want a host address (not a network, link-local, loopback or multicast address)", fam.field, j, s)
			}
			if t.Topology.Nodes[eps[j].Node].Kind == "bridge" {
				return nil, fmt.Errorf("%s[%d]: %s:%s is a bridge port: give it \"\"", fam.field, j, eps[j].Node, eps[j].If)
			}
			res = append(res, linkAddr{eps[j], p})
		}
	}
	return res, nil
}

// Parse splits the link's two endpoints.
func (l TopoLink) Parse() ([2]Endpoint, error) {
	var eps [2]Endpoint
	if len(l.Endpoints) != 2 {
		return eps, fmt.Errorf("want 2 endpoints, have %d", len(l.Endpoints))
	}
	for i, s := range l.Endpoints {
		node, ifName, ok := strings.Cut(s, ":")
		if !ok || !ifNameRE.MatchString(ifName) || ifName == "lo" {
			return eps, fmt.Errorf("endpoint %q: want node:interface (interface at most 15 characters)", s)
		}
		eps[i] = Endpoint{node, ifName}
	}
	if eps[0].Node == eps[1].Node {
		return eps, fmt.Errorf("endpoints %v: both on one node", l.Endpoints)
	}
	return eps, nil
}

// NodeNames returns the node names, sorted.
func (t *Topology) NodeNames() []string {
	var names []string
	for n := range t.Topology.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Role is a node's petrel label ("node", "etcd", "bird" or "").
func (n *TopoNode) Role() string { return n.Labels[LabelRole] }

// Pods is the number of pods the node asks for.
func (n *TopoNode) Pods() int {
	v, _ := strconv.Atoi(n.Labels[LabelPods])
	return v
}

// KubeAPIServer reports whether the (etcd) node also runs a kube-apiserver.
func (n *TopoNode) KubeAPIServer() bool { return n.Labels[LabelKubeAPIServer] == "true" }

// RouteReflector reports whether a bird or frr node reflects routes.
func (n *TopoNode) RouteReflector() bool { return n.Labels[LabelRR] == "true" }

// MeshOff reports whether the node-to-node mesh is turned off: when a
// BIRD route reflector serves the petrel nodes.
func (t *Topology) MeshOff() bool {
	for _, n := range t.Topology.Nodes {
		if (n.Role() == "bird" || n.Role() == "frr") && n.RouteReflector() {
			return true
		}
	}
	return false
}
