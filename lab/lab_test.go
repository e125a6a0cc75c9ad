package lab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	petrelpb "github.com/petrel-net/petrel/proto"
)

// The shipped topologies parse and have what the lab needs.
func TestShippedTopologies(t *testing.T) {
	files, err := filepath.Glob("../deploy/lab/*.clab.yml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no topologies: %v", err)
	}
	for _, f := range files {
		topo, err := LoadTopology(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".clab.yml"); topo.Name != want {
			t.Errorf("%s: name %q, want %q", f, topo.Name, want)
		}
		if _, err := loadResources(f, topo); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	mesh, err := LoadTopology("../deploy/lab/mesh3.clab.yml")
	if err != nil {
		t.Fatal(err)
	}
	nodes, pods := 0, 0
	for _, n := range mesh.Topology.Nodes {
		if n.Role() == "node" {
			nodes++
			pods += n.Pods()
		}
	}
	if nodes != 3 || pods < 3 {
		t.Errorf("mesh3: %d petrel nodes, %d pods", nodes, pods)
	}
}

func TestParseTopologyErrors(t *testing.T) {
	base := "topology:\n  nodes:\n    e: {labels: {petrel: etcd}}\n    a: {}\n    b: {}\n"
	for _, tc := range []struct{ yaml, want string }{
		{"name: my-lab\n" + base, "no '-'"},
		{"name: x\ntopology:\n  nodes:\n    a: {kind: ceos}\n", `kind "ceos" not supported`},
		{"name: x\ntopology:\n  nodes:\n    a: {}\n", "exactly one node labelled petrel: etcd"},
		{"name: x\n" + base + "  links:\n    - endpoints: [a:eth1]\n", "want 2 endpoints"},
		{"name: x\n" + base + "  links:\n    - endpoints: [a:eth1, c:eth1]\n", `unknown node "c"`},
		{"name: x\n" + base + "  links:\n    - endpoints: [a:eth1, b:eth1]\n    - endpoints: [a:eth1, e:eth1]\n", "used twice"},
		{"name: x\n" + base + "  links:\n    - endpoints: [a:averyveryverylongname, b:eth1]\n", "at most 15"},
		{"name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd, pods: \"2\"}}\n", "on a petrel or kube-control-plane node"},
		{"name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd}}\n    s: {kind: bridge, labels: {petrel: node}}\n", "needs kind linux"},
		{"name: x\n" + base + "    a: {kind: bridge}\n", `line 7: mapping key "a" already defined at line 5 (a duplicate name)`},
		{"name: x\n" + base + "    f: {labels: {petrel: etcd}}\n", "have 2 [e f]"},
		{"name: x\n" + base + "  links:\n    - endpoints: [a-eth1, b:eth1]\n", `endpoint "a-eth1": want node:interface`},
		{"name: x\n" + base + "  links:\n    - endpoints: [a:eth1, a:eth2]\n", "both on one node"},
		{"name: x\n" + base + "    s: {kind: bridge}\n  links:\n    - endpoints: [a:eth1, s:br0]\n", "br0 is the bridge itself"},
		{"name: x\n" + base + "    w: {labels: {petrel: node, pods: \"2\"}}\n    w-pod2: {}\n", "node w-pod2: clashes with pod 2 of node w"},
		{"name: x\n" + base + "  links:\n    - endpoints: [a:eth1, nodex:eth1]\n", `endpoint nodex:eth1: unknown node "nodex"`},
		{"name: x\n" + base + "  links: [[\n", "topology: yaml"},
		{"name: x\n" + base + "    r: {labels: {route-reflector: \"true\"}}\n", "label route-reflector"},
		{"name: x\n" + base + "    r: {labels: {petrel: node, kube-apiserver: \"true\"}}\n", `node r: label kube-apiserver: "true" (want "true" or "false", on the node labelled petrel: etcd)`},
		{"name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd, kube-apiserver: \"yes\"}}\n", `label kube-apiserver: "yes"`},
		{"name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd, resources: svc.json}}\n", `node e: label resources: "svc.json" (want a .yaml file`},
		{"name: x\n" + base + "    r: {labels: {petrel: bird, resources: r.yaml}}\n", "label resources"},
	} {
		_, err := ParseTopology([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := ParseTopology([]byte("name: x\n" + base + "  links:\n    - endpoints: [a:eth1, b:eth1]\n")); err != nil {
		t.Errorf("valid topology: %v", err)
	}
}

func TestRouteReflectorTopology(t *testing.T) {
	rr, err := LoadTopology("../deploy/lab/racks_rr.clab.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !rr.MeshOff() || !rr.Topology.Nodes["router"].RouteReflector() {
		t.Errorf("racks_rr: mesh off %v, router reflects %v", rr.MeshOff(), rr.Topology.Nodes["router"].RouteReflector())
	}
	racks, err := LoadTopology("../deploy/lab/racks.clab.yml")
	if err != nil {
		t.Fatal(err)
	}
	if racks.MeshOff() {
		t.Error("racks: mesh off")
	}
}

func TestLoadTopologyErrors(t *testing.T) {
	if _, err := LoadTopology("/nonexistent/bad.clab.yml"); err == nil || err.Error() != "topology /nonexistent/bad.clab.yml: no such file" {
		t.Errorf("missing file: %v", err)
	}
	dir := t.TempDir()
	f := filepath.Join(dir, "bad.clab.yml")
	if err := os.WriteFile(f, []byte("name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd}}\n  links:\n    - endpoints: [e:eth1, ghost:eth1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTopology(f); err == nil || !strings.HasPrefix(err.Error(), f+": ") || !strings.Contains(err.Error(), `unknown node "ghost"`) {
		t.Errorf("bad file: %v", err)
	}
}

func TestResolveName(t *testing.T) {
	if n, err := ResolveName("../deploy/lab/mesh3.clab.yml"); err != nil || n != "mesh3" {
		t.Errorf("file: %q %v", n, err)
	}
	if n, err := ResolveName("mesh3"); err != nil || n != "mesh3" {
		t.Errorf("name: %q %v", n, err)
	}
	if _, err := ResolveName("../x"); err == nil {
		t.Error("bad name accepted")
	}
}

// Links' ipv4 and ipv6 lists: one CIDR (or "") per endpoint, of the
// list's family, a host address, none on a bridge port.
func TestLinkAddrs(t *testing.T) {
	base := "name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd}}\n    a: {}\n    sw: {kind: bridge}\n  links:\n    - endpoints: [a:eth1, sw:p-a]\n"
	for _, tc := range []struct{ yaml, want string }{
		{"      ipv4: [10.0.0.1/24]\n", "links[0]: ipv4: want one address per endpoint (2, \"\" for none), have 1"},
		{"      ipv6: [10.0.0.1/24, \"\"]\n", `links[0]: ipv6[0]: "10.0.0.1/24": want an IPv6 address with its prefix length (fd00:10::1/64)`},
		{"      ipv4: [\"fd00::1/64\", \"\"]\n", `ipv4[0]: "fd00::1/64": want an IPv4 address`},
		{"      ipv4: [10.0.0.1, \"\"]\n", `ipv4[0]: "10.0.0.1": want an IPv4 address with its prefix length`},
		{"      ipv4: [10.0.0.0/24, \"\"]\n", `ipv4[0]: "10.0.0.0/24": want a host address`},
		{"      ipv6: [\"fe80::1/64\", \"\"]\n", `ipv6[0]: "fe80::1/64": want a host address`},
		{"      ipv6: [\"fd00::1/64\", \"fd00::2/64\"]\n", `ipv6[1]: sw:p-a is a bridge port: give it ""`},
	} {
		_, err := ParseTopology([]byte(base + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.yaml, err, tc.want)
		}
	}
	topo, err := ParseTopology([]byte(base + "      ipv4: [10.0.0.1/24, \"\"]\n      ipv6: [\"fd00:10::1/64\", \"\"]\n    - endpoints: [a:eth2, e:eth1]\n      ipv6: [\"fd00:11::1/64\", \"fd00:11::2/64\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range topo.Topology.Links {
		eps, _ := l.Parse()
		addrs, err := topo.linkAddrs(l, eps)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			got = append(got, a.Node+":"+a.If+" "+a.Prefix.String())
		}
	}
	if want := []string{"a:eth1 10.0.0.1/24", "a:eth1 fd00:10::1/64", "a:eth2 fd00:11::1/64", "e:eth1 fd00:11::2/64"}; !slices.Equal(got, want) {
		t.Errorf("addresses %v, want %v", got, want)
	}
}

// The dual-stack lab gives three petrel nodes, its etcd and its ToR both
// families, node4 IPv6 only.
func TestDualStackTopology(t *testing.T) {
	topo, err := LoadTopology("../deploy/lab/dualstack.clab.yml")
	if err != nil {
		t.Fatal(err)
	}
	fams := map[string]map[bool]bool{}
	for _, l := range topo.Topology.Links {
		eps, _ := l.Parse()
		addrs, _ := topo.linkAddrs(l, eps)
		for _, a := range addrs {
			if fams[a.Node] == nil {
				fams[a.Node] = map[bool]bool{}
			}
			fams[a.Node][a.Prefix.Addr().Is4()] = true
		}
	}
	for _, n := range []string{"node1", "node2", "node3", "etcd", "tor"} {
		if !fams[n][true] || !fams[n][false] {
			t.Errorf("%s: families %v, want IPv4 and IPv6", n, fams[n])
		}
	}
	if fams["node4"][true] || !fams["node4"][false] {
		t.Errorf("node4: families %v, want IPv6 only", fams["node4"])
	}
}

// IP and IP6 as the lab reads them from a node's env.
func TestEnvAddr(t *testing.T) {
	for _, tc := range []struct{ setting, own, want string }{
		{"", "10.0.0.1/24", "10.0.0.1/24"},
		{"autodetect", "fd00::1/64", "fd00::1/64"},
		{"none", "10.0.0.1/24", ""},
		{"10.9.0.1/24", "10.0.0.1/24", "10.9.0.1/24"},
	} {
		if got := envAddr(tc.setting, tc.own); got != tc.want {
			t.Errorf("envAddr(%q, %q) = %q, want %q", tc.setting, tc.own, got, tc.want)
		}
	}
}

// Status shows a matrix per family, names the family of a loss, and
// counts sessions per family.
func TestStatusRendersBothMatrices(t *testing.T) {
	pods := []PodState{
		{Name: "default/a-pod1", Node: "a", Addr: "192.168.0.1", Addr6: "fd00:192:168::1"},
		{Name: "default/b-pod1", Node: "b", Addr: "192.168.0.65", Addr6: "fd00:192:168::41"},
		{Name: "default/c-pod1", Node: "c", Addr6: "fd00:192:168::81"}, // IPv6 only
	}
	st := &labStatus{state: &State{Name: "x", Ready: true, Pods: pods}, procs: map[string]string{}, loss: map[int]map[[2]string]int{
		4: {{"default/a-pod1", "default/b-pod1"}: 0, {"default/b-pod1", "default/a-pod1"}: 0},
		6: {},
	}}
	for _, from := range pods {
		for _, to := range pods {
			if from != to {
				st.loss[6][[2]string{from.Name, to.Name}] = 0
			}
		}
	}
	st.loss[6][[2]string{"default/c-pod1", "default/a-pod1"}] = 100
	st.problems = append(st.problems, "ping -6 default/c-pod1 -> default/a-pod1: 100% loss")
	st.sessions = []nodeSessions{{node: NodeState{Name: "a"}, peers: []*petrelpb.Peer{
		{Address: "10.0.0.2", State: "Established"}, {Address: "fd00:10::2", State: "Established"}, {Address: "fd00:10::3", State: "Active"},
	}}}
	var b strings.Builder
	st.render(&b)
	out := b.String()
	for _, want := range []string{
		"a: 2/3 sessions Established (IPv4 1/1, IPv6 1/2)",
		"POD             NODE  ADDRESS       IPV6 ADDRESS\n",
		"default/c-pod1  c     -             fd00:192:168::81\n",
		"IPv4 ping matrix (packet loss, 3 echoes, row pings column):\nFROM \\ TO  a-pod1  b-pod1\na-pod1     -       0%\nb-pod1     0%      -\n",
		"IPv6 ping matrix (packet loss, 3 echoes, row pings column):\nFROM \\ TO  a-pod1  b-pod1  c-pod1\n",
		"c-pod1     100%    0%      -\n",
		"Problems:\n  ping -6 default/c-pod1 -> default/a-pod1: 100% loss\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
