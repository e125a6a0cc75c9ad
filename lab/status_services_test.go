package lab

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A router's Service routes are compared with what the nodes advertise: a
// node missing, a node too many and a prefix nobody advertises are each a
// problem; a route outside the Service ranges is not shown.
func TestServiceRoutesCompared(t *testing.T) {
	sv := &serviceView{
		ranges: []svcRange{{"cluster", netip.MustParsePrefix("10.96.0.0/24")}},
		nodes:  []string{"node1", "node2", "node3"},
		advertised: map[string][]string{
			"node1": {"10.96.0.0/24", "10.96.0.50/32", "192.0.2.7/32"},
			"node2": {"10.96.0.0/24", "10.96.0.50/32"},
			"node3": {"10.96.0.0/24"},
		},
		owners: map[netip.Addr]string{netip.MustParseAddr("10.96.0.50"): "default/web cluster IP"},
	}
	for _, tc := range []struct {
		p    string
		want bool
	}{{"10.96.0.0/24", true}, {"10.96.0.9/32", true}, {"10.96.0.0/16", false}, {"192.0.2.7/32", true}, {"192.0.2.8/32", false}, {"192.168.1.0/26", false}} {
		if got := sv.isService(netip.MustParsePrefix(tc.p)); got != tc.want {
			t.Errorf("isService(%s) = %v, want %v", tc.p, got, tc.want)
		}
	}
	r := routerServices{node: "tor", routes: map[netip.Prefix][]string{
		netip.MustParsePrefix("10.96.0.0/24"):  {"node1", "node2", "node3"},
		netip.MustParsePrefix("10.96.0.50/32"): {"node1", "node2", "node3"}, // node3 too many
		netip.MustParsePrefix("10.96.0.77/32"): {"node2"},                   // nobody advertises it
		// 192.0.2.7/32 missing
	}}
	st := &labStatus{services: sv}
	st.compareServices(r)
	want := []string{
		"tor: Service prefix 10.96.0.50/32 from node1, node2, node3, but advertised by node1, node2",
		"tor: Service prefix 10.96.0.77/32 from node2, but advertised by no node",
		"tor: Service prefix 192.0.2.7/32 from no node, but advertised by node1",
	}
	if strings.Join(st.problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(st.problems, "\n"), strings.Join(want, "\n"))
	}
	sv.routers = []routerServices{r}
	var out bytes.Buffer
	sv.render(&out)
	for _, line := range []string{"10.96.0.0/24   node1, node2, node3  cluster range", "10.96.0.50/32  node1, node2, node3  default/web cluster IP", "node3  10.96.0.0/24\n"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("render lacks %q:\n%s", line, out.String())
		}
	}
}

// The resources file splits into Calico's resources and Kubernetes
// objects; the latter need the kube-apiserver label.
func TestLoadResources(t *testing.T) {
	dir := t.TempDir()
	res := "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: lb}\nspec: {cidr: 192.0.2.0/24, allowedUses: [LoadBalancer]}\n---\n" +
		"apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n"
	if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(res), 0o644); err != nil {
		t.Fatal(err)
	}
	topo := func(api string) *Topology {
		tp, err := ParseTopology([]byte("name: x\ntopology:\n  nodes:\n    e: {labels: {petrel: etcd, resources: r.yaml" + api + "}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	r, err := loadResources(filepath.Join(dir, "x.clab.yml"), topo(`, kube-apiserver: "true"`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.calico, "kind: IPPool") || len(r.kube) != 1 || r.kube[0].GetKind() != "Service" {
		t.Errorf("calico %q, kube %v", r.calico, r.kube)
	}
	_, err = loadResources(filepath.Join(dir, "x.clab.yml"), topo(""))
	if err == nil || !strings.Contains(err.Error(), `Service web: a Kubernetes object needs a kube-apiserver (label kube-apiserver: "true" on node e)`) {
		t.Errorf("without a kube-apiserver: %v", err)
	}
	if _, err := loadResources(filepath.Join(dir, "y", "x.clab.yml"), topo("")); err == nil || !strings.Contains(err.Error(), "label resources") {
		t.Errorf("a missing file: %v", err)
	}
}
