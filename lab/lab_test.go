package lab

import (
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
		{"name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd, pods: \"2\"}}\n", "on a petrel node"},
		{"name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd}}\n    s: {kind: bridge, labels: {petrel: node}}\n", "needs kind linux"},
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
