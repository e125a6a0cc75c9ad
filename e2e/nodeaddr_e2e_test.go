package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/e2e/harness"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// TestNodeAddressesBothFamilies: calico-node's IP and IP6 settings, on
// etcd. node1 is dual stack by autodetection alone (IP unset: first-found;
// IP6=autodetect with can-reach=), node2 is IPv6-only (IP=none, IP6 without
// a length, CALICO_ROUTER_ID=hash); each registers what it resolved in
// spec.bgp, and node2 runs with the hashed router ID. A node left with no
// address, or IPv6-only without CALICO_ROUTER_ID, refuses to start and
// says which variables to set.
func TestNodeAddressesBothFamilies(t *testing.T) {
	c := newClusterLab(t, 0, seedPool)
	c.hub.MustRun(t, "ip", "-6", "addr", "add", "fd00:10::100/64", "dev", "br0", "nodad")
	store := []string{"DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + etcdURL}
	node := func(name, v4, v6 string) *harness.Node {
		n := c.lab.Node(name)
		c.lab.Attach(c.hub, "br0", n, "eth1", v4)
		n.MustRun(t, "ip", "-6", "addr", "add", v6, "dev", "eth1", "nodad")
		return n
	}
	n1 := node("node1", "10.0.0.1/24", "fd00:10::1/64")
	c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, n1, append(store,
		"NODENAME=node1", "IP6=autodetect", "IP6_AUTODETECTION_METHOD=can-reach=fd00:10::100")...))
	n2 := node("node2", "10.0.0.2/24", "fd00:10::2/64") // IPv4 for etcd only
	c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, n2, append(store,
		"NODENAME=node2", "IP=none", "IP6=fd00:10::2", "CALICO_ROUTER_ID=hash")...))

	for name, want := range map[string][2]string{
		"node1": {"10.0.0.1/24", "fd00:10::1/64"},
		"node2": {"", "fd00:10::2/64"},
	} {
		var n struct {
			Spec struct {
				BGP struct{ IPv4Address, IPv6Address string }
			}
		}
		out := c.petrel(t, "get", "node", name, "-o", "json")
		if err := json.Unmarshal([]byte(out), &n); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if got := [2]string{n.Spec.BGP.IPv4Address, n.Spec.BGP.IPv6Address}; got != want {
			t.Errorf("%s registered ipv4Address %q ipv6Address %q, want %q %q", name, got[0], got[1], want[0], want[1])
		}
	}
	info, err := withClient(c.nodes[1], func(cl *cli.Client) (*petrelpb.GetInfoResponse, error) {
		return cl.GetInfo(context.Background(), &petrelpb.GetInfoRequest{})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := config.HashRouterID("node2").String(); info.RouterId != want {
		t.Errorf("IPv6-only node2 runs with router ID %s, want the hash %s", info.RouterId, want)
	}

	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"node3", []string{"IP=none"}, `IP="none" and IP6="" leave the node without a BGP address`},
		{"node4", []string{"IP=none", "IP6=fd00:10::4"}, "on an IPv6-only node set CALICO_ROUTER_ID=hash"},
		{"node5", []string{"IP6=autodetect", "IP6_AUTODETECTION_METHOD=interface=wlan.*"}, `IP6="autodetect" with IP6_AUTODETECTION_METHOD="interface=wlan.*": no interface matches`},
	} {
		n := node(tc.name, "10.0.0."+tc.name[4:]+"/24", "fd00:10::"+tc.name[4:]+"/64")
		args := append(append([]string{"env"}, store...), "NODENAME="+tc.name)
		args = append(append(args, tc.env...), petrelBin, "daemon", "--socket", filepath.Join(c.lab.Dir(), tc.name+".sock"))
		out, err := n.Run(args...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s %v: %v\n%s\nwant the error %q", tc.name, tc.env, err, out, tc.want)
		}
	}
	if out := c.petrel(t, "get", "nodes"); strings.Contains(out, "node4") || strings.Contains(out, "node3") {
		t.Errorf("a node that refused to start was registered:\n%s", out)
	}
}
