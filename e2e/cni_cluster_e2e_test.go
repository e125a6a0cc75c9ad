package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/e2e/harness"
)

// buildCNITool builds cnitool (libcni's command line, what a container
// runtime does) into a temp dir; the test skips when it cannot be built.
func buildCNITool(t *testing.T) string {
	t.Helper()
	tool := filepath.Join(t.TempDir(), "cnitool")
	if out, err := exec.Command("go", "build", "-o", tool, "github.com/containernetworking/cni/cnitool").CombinedOutput(); err != nil {
		t.Skipf("cannot build cnitool: %v\n%s", err, out)
	}
	return tool
}

// cleanCNICache removes libcni's result cache afterwards if this test
// creates it (cnitool has no flag for another place).
func cleanCNICache(t *testing.T) {
	const cacheDir = "/var/lib/cni"
	if _, err := os.Stat(cacheDir); errors.Is(err, os.ErrNotExist) {
		t.Cleanup(func() { os.RemoveAll(cacheDir) })
	}
}

// cniNode is one lab node with the plugins installed by install-cni, its
// CNI_PATH and a NETCONFPATH holding the conflist (petrel-cni only: portmap
// is not installed here).
type cniNode struct {
	node           *petrelNode
	binDir, netDir string
	netName        string
	list           map[string]any
}

// installCNI runs `petrel install-cni` for node n into temp dirs, pointing
// the conflist at the lab's etcd, and keeps only the petrel-cni entry.
func installCNI(t *testing.T, n *petrelNode) *cniNode {
	t.Helper()
	c := &cniNode{node: n, binDir: t.TempDir(), netDir: t.TempDir()}
	installDir := t.TempDir()
	if out, err := exec.Command(petrelBin, "install-cni", "--cni-bin-dir", c.binDir, "--cni-net-dir", installDir,
		"--nodename", n.Name, "--datastore-type", "etcdv3", "--etcd-endpoints", etcdURL,
		"--serviceaccount-dir", filepath.Join(installDir, "none")).CombinedOutput(); err != nil {
		t.Fatalf("install-cni on %s: %v\n%s", n.Name, err, out)
	}
	data, err := os.ReadFile(filepath.Join(installDir, "10-petrel.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var list map[string]any
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("installed conflist: %v\n%s", err, data)
	}
	plugins, _ := list["plugins"].([]any)
	if len(plugins) == 0 || plugins[0].(map[string]any)["type"] != "petrel-cni" {
		t.Fatalf("installed conflist:\n%s", data)
	}
	p0 := plugins[0].(map[string]any)
	if p0["datastore_type"] != "etcdv3" || p0["etcd_endpoints"] != etcdURL || p0["nodename"] != n.Name {
		t.Fatalf("installed conflist does not point at the lab's etcd:\n%s", data)
	}
	list["plugins"] = []any{p0}
	c.list, c.netName = list, list["name"].(string)
	c.writeConflist(t, nil)
	return c
}

// writeConflist writes the conflist with extra keys merged into the
// petrel-cni entry.
func (c *cniNode) writeConflist(t *testing.T, extra map[string]any) {
	t.Helper()
	p0 := map[string]any{}
	for k, v := range c.list["plugins"].([]any)[0].(map[string]any) {
		p0[k] = v
	}
	for k, v := range extra {
		p0[k] = v
	}
	list := map[string]any{}
	for k, v := range c.list {
		list[k] = v
	}
	list["plugins"] = []any{p0}
	data, _ := json.Marshal(list)
	if err := os.WriteFile(filepath.Join(c.netDir, "10-petrel.conflist"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cnitool runs cnitool verb for pod (a lab node used as the pod's network
// namespace) inside the node's namespace, as the container runtime would.
func (c *cniNode) cnitool(tool, verb string, pod *harness.Node) (string, error) {
	cmd := exec.Command("ip", "netns", "exec", c.node.NS, tool, verb, c.netName, "/var/run/netns/"+pod.NS)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+c.netDir, "CNI_PATH="+c.binDir, "CNI_IFNAME=eth0",
		"CNI_ARGS=K8S_POD_NAMESPACE=default;K8S_POD_NAME="+pod.Name)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cnitool %s %s on %s: %w\n%s", verb, pod.Name, c.node.Name, err, out)
	}
	return string(out), nil
}

var handlesRE = regexp.MustCompile(`(\d+) handles`)

// ipamHandles runs `petrel ipam check` against the lab's etcd, fails the
// test unless it is clean and returns the number of handles it checked.
func ipamHandles(t *testing.T, c *clusterLab) int {
	t.Helper()
	out, err := c.petrelErr("ipam", "check")
	m := handlesRE.FindStringSubmatch(out)
	if err != nil || !strings.Contains(out, "no problems") || m == nil {
		t.Fatalf("ipam check: %v\n%s", err, out)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// TestCNIAcrossNodes is issue 8: real petrel daemons in datastore mode on
// two nodes, the plugins installed by install-cni, and cnitool adding a pod
// on each node against the lab's etcd. The pods look like the seed's and
// reach each other over the routes the daemons exchange (each node claims a
// block at the first ADD and originates it); CHECK passes; DEL removes the
// veth and releases the address; a second DEL succeeds; a broken conflist
// fails ADD naming the field and leaves nothing.
func TestCNIAcrossNodes(t *testing.T) {
	harness.RequireRoot(t)
	tool := buildCNITool(t)
	c := newClusterLab(t, 2, seedPool)
	cleanCNICache(t)
	c.waitSessions(t, map[int][]string{1: others(1, 1, 2), 2: others(2, 1, 2)})
	// Proxy ARP answers for 169.254.1.1 only when the node has a route to
	// it, as every real node has (a default route); racksLab's nodes do too.
	for _, n := range c.nodes {
		n.MustRun(t, "ip", "route", "add", "default", "via", "10.0.0.100")
	}
	// The daemons hold handles of their own (VXLAN tunnel addresses).
	base := ipamHandles(t, c)

	nodes := []*cniNode{installCNI(t, c.nodes[0]), installCNI(t, c.nodes[1])}
	pods := []*harness.Node{c.lab.Node("pod1"), c.lab.Node("pod2")}
	addrs := make([]string, 2)
	for i, n := range nodes {
		out, err := n.cnitool(tool, "add", pods[i])
		if err != nil {
			t.Fatal(err)
		}
		var res types100.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 {
			t.Fatalf("cnitool add on %s printed (%v):\n%s", n.node.Name, err, out)
		}
		if ones, _ := res.IPs[0].Address.Mask.Size(); ones != 32 || !strings.HasPrefix(res.IPs[0].Address.IP.String(), "192.168.") {
			t.Fatalf("pod%d got %s, want a /32 of the pool", i+1, res.IPs[0].Address.String())
		}
		addrs[i] = res.IPs[0].Address.IP.String()
	}
	if got := ipamHandles(t, c); got != base+2 {
		t.Errorf("ipam check counts %d handles after two ADDs, want %d", got, base+2)
	}

	// The pods look like the seed's.
	for i, pod := range pods {
		if a := pod.MustRun(t, "ip", "-4", "addr", "show", "dev", "eth0"); !strings.Contains(a, "inet "+addrs[i]+"/32") || !strings.Contains(a, "mtu 1450") {
			t.Errorf("pod%d eth0:\n%s", i+1, a)
		}
		routes := pod.MustRun(t, "ip", "-4", "route")
		for _, want := range []string{"default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link"} {
			if !strings.Contains(routes, want) {
				t.Errorf("pod%d routes lack %q:\n%s", i+1, want, routes)
			}
		}
		hostIf := dataplane.HostVethName("default", pod.Name)
		if r := nodes[i].node.MustRun(t, "ip", "-4", "route", "show", addrs[i]); !strings.Contains(r, "dev "+hostIf) {
			t.Errorf("node%d route to pod%d:\n%s", i+1, i+1, r)
		}
	}

	// pod1 reaches pod2 (and back) over the blocks the daemons originate.
	harness.Eventually(t, 20*time.Second, 200*time.Millisecond, func() error {
		for i, pod := range pods {
			if out, err := pod.Run("ping", "-c", "1", "-W", "1", addrs[1-i]); err != nil {
				return fmt.Errorf("pod%d -> %s: %v\n%s", i+1, addrs[1-i], err, out)
			}
		}
		return nil
	}, "pod1 <-> pod2")
	// ... routed by BGP (the owner's block via the owner), not encapsulated
	// (CrossSubnet, one subnet).
	for i, n := range c.nodes {
		if r := n.MustRun(t, "ip", "-4", "route", "get", addrs[1-i]); !strings.Contains(r, fmt.Sprintf("via 10.0.0.%d dev eth1", 2-i)) {
			t.Errorf("node%d's route to pod%d:\n%s", i+1, 2-i, r)
		}
	}
	if out, err := pods[0].Run("ping", "-c", "5", "-i", "0.05", "-W", "1", addrs[1]); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Errorf("pod1 -> pod2: loss\n%s", out)
	}

	// CHECK (libcni checks against its cached ADD result).
	for i, n := range nodes {
		if _, err := n.cnitool(tool, "check", pods[i]); err != nil {
			t.Error(err)
		}
	}

	// DEL on node1: veth and pod route gone, the address released.
	hostIf := dataplane.HostVethName("default", pods[0].Name)
	if _, err := nodes[0].cnitool(tool, "del", pods[0]); err != nil {
		t.Fatal(err)
	}
	if links := c.nodes[0].MustRun(t, "ip", "-o", "link"); strings.Contains(links, hostIf) || strings.Contains(links, ": cali") {
		t.Errorf("node1 keeps a veth after DEL:\n%s", links)
	}
	if links := pods[0].MustRun(t, "ip", "-o", "link"); strings.Contains(links, "eth0") {
		t.Errorf("pod1 keeps eth0 after DEL:\n%s", links)
	}
	if r := c.nodes[0].MustRun(t, "ip", "-4", "route", "show", "proto", "80"); strings.Contains(r, addrs[0]) {
		t.Errorf("node1 keeps the pod route after DEL:\n%s", r)
	}
	if got := ipamHandles(t, c); got != base+1 {
		t.Errorf("ipam check counts %d handles after DEL, want %d (pod2's and the daemons')", got, base+1)
	}
	if _, err := nodes[0].cnitool(tool, "del", pods[0]); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	if got := ipamHandles(t, c); got != base+1 {
		t.Errorf("ipam check counts %d handles after the second DEL, want %d", got, base+1)
	}

	// A broken conflist: ADD fails naming the field, nothing is allocated
	// and no veth made.
	pod3 := c.lab.Node("pod3")
	for _, bad := range []struct {
		extra map[string]any
		field string
	}{
		{map[string]any{"mtu": "abc"}, `"mtu"`},
		{map[string]any{"datastore_type": "consul"}, `"datastore_type"`},
	} {
		nodes[0].writeConflist(t, bad.extra)
		out, err := nodes[0].cnitool(tool, "add", pod3)
		if err == nil {
			t.Errorf("ADD with %v succeeded:\n%s", bad.extra, out)
			continue
		}
		if !strings.Contains(out, "config: field "+bad.field) {
			t.Errorf("ADD with %v: the error does not name the field %s:\n%s", bad.extra, bad.field, out)
		}
		if links := c.nodes[0].MustRun(t, "ip", "-o", "link"); strings.Contains(links, ": cali") {
			t.Errorf("failed ADD with %v left a veth:\n%s", bad.extra, links)
		}
		if links := pod3.MustRun(t, "ip", "-o", "link"); strings.Contains(links, "eth0") {
			t.Errorf("failed ADD with %v left eth0 in the pod:\n%s", bad.extra, links)
		}
		if got := ipamHandles(t, c); got != base+1 {
			t.Errorf("failed ADD with %v: ipam check counts %d handles, want %d", bad.extra, got, base+1)
		}
	}
	nodes[0].writeConflist(t, nil)

	// pod2 still fine; remove it too and IPAM is empty.
	if _, err := nodes[1].cnitool(tool, "del", pods[1]); err != nil {
		t.Fatal(err)
	}
	if got := ipamHandles(t, c); got != base {
		t.Errorf("ipam check counts %d handles after deleting both pods, want %d", got, base)
	}
}
