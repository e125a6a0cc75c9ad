package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
