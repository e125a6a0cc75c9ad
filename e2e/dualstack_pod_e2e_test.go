package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/ipam"
)

// podPoolV6 is the IPv6 pool of the dual-stack tests; without a block
// size, blocks are /122.
var podPoolV6 = netip.MustParsePrefix("fd00:244::/56")

// addIPv6Pool adds podPoolV6 beside the lab's IPv4 pool and gives the node
// an address of each family (on its loopback) to ping pods from, and a
// default route into an "uplink" (a veth pair inside the node): as on a real node, proxy ARP answers
// pods for 169.254.1.1 only when that address routes out another
// interface.
func (c *cniLab) addIPv6Pool() {
	c.t.Helper()
	o, _ := datastore.New(datastore.KindIPPool)
	pool := o.(*datastore.IPPool)
	pool.Name = "default-ipv6-ippool"
	pool.Spec = datastore.IPPoolSpec{CIDR: podPoolV6.String()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.b.Create(ctx, pool); err != nil {
		c.t.Fatal(err)
	}
	c.node.MustRun(c.t, "ip", "addr", "add", "10.0.0.1/32", "dev", "lo")
	c.node.MustRun(c.t, "ip", "-6", "addr", "add", "fd00:ff::1/128", "dev", "lo")
	c.node.MustRun(c.t, "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplink-end")
	c.node.MustRun(c.t, "ip", "link", "set", "uplink-end", "up")
	c.node.MustRun(c.t, "ip", "link", "set", "uplink", "up")
	c.node.MustRun(c.t, "ip", "route", "add", "default", "dev", "uplink")
}

// petrel runs the petrel command line inside the node, on the lab's etcd.
func (c *cniLab) petrel(args ...string) (string, error) {
	endpoints, _ := c.plugin0["etcd_endpoints"].(string)
	return c.node.Run(append([]string{"env", "NODENAME=" + c.node.Name, "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + endpoints, petrelBin}, args...)...)
}

func (c *cniLab) mustPetrel(args ...string) string {
	c.t.Helper()
	out, err := c.petrel(args...)
	if err != nil {
		c.t.Fatalf("petrel %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// assertDualStackPod checks a dual-stack pod's plumbing as Calico makes it
// (the /32 and /128 on eth0, default routes via 169.254.1.1 and
// fe80::ecee:eeff:feee:eeee, the node's host routes to both addresses,
// proxy NDP on the host veth), that its IPv6 block is affine to the node,
// and that the node reaches the pod over both families.
func (c *cniLab) assertDualStackPod(podNS, hostIf string, v4, v6 netip.Addr) {
	t := c.t
	t.Helper()
	if !netip.MustParsePrefix("10.244.0.0/16").Contains(v4) || !podPoolV6.Contains(v6) {
		t.Fatalf("pod addresses %s and %s, want one of each pool", v4, v6)
	}
	if a := run(t, "ip", "-n", podNS, "addr", "show", "dev", "eth0"); !strings.Contains(a, "inet "+v4.String()+"/32") || !strings.Contains(a, "inet6 "+v6.String()+"/128") {
		t.Errorf("pod eth0 lacks %s/32 or %s/128:\n%s", v4, v6, a)
	}
	if r := run(t, "ip", "-n", podNS, "-6", "route"); !strings.Contains(r, "default via "+dataplane.WorkloadGatewayV6.String()+" dev eth0") {
		t.Errorf("pod IPv6 routes:\n%s", r)
	}
	if r := run(t, "ip", "-n", podNS, "-4", "route"); !strings.Contains(r, "default via 169.254.1.1 dev eth0") {
		t.Errorf("pod IPv4 routes:\n%s", r)
	}
	for _, a := range []netip.Addr{v4, v6} {
		fam := map[bool]string{true: "-4", false: "-6"}[a.Is4()]
		if r := c.node.MustRun(t, "ip", fam, "route", "show", a.String()); !strings.Contains(r, a.String()+" dev "+hostIf) {
			t.Errorf("node host route to %s:\n%s", a, r)
		}
	}
	if v := c.node.MustRun(t, "cat", "/proc/sys/net/ipv6/conf/"+hostIf+"/proxy_ndp"); strings.TrimSpace(v) != "1" {
		t.Errorf("proxy_ndp on %s is %q", hostIf, v)
	}
	block, _ := v6.Prefix(122)
	if _, err := c.b.Get(context.Background(), datastore.KindBlockAffinity, ipam.AffinityName(c.node.Name, block)); err != nil {
		t.Errorf("IPv6 block %s not affine to %s: %v", block, c.node.Name, err)
	}
	c.node.MustRun(t, "ping", "-c", "2", "-i", "0.2", "-W", "5", v4.String())
	c.node.MustRun(t, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "5", v6.String())
}

// ipamCheckCLI runs `petrel ipam check` in the node: it must be clean.
func (c *cniLab) ipamCheckCLI() {
	c.t.Helper()
	if out := c.mustPetrel("ipam", "check"); !strings.Contains(out, "no problems") {
		c.t.Errorf("petrel ipam check:\n%s", out)
	}
}

// TestCNIPluginDualStack: with ipam assign_ipv6 "true" the plugin gives a
// pod one address of each family under one handle, plumbs both, lists both
// in its result with their gateways and default routes, gives the same
// two again on a repeated ADD, and releases both on DEL.
func TestCNIPluginDualStack(t *testing.T) {
	c := newCNILab(t)
	c.addIPv6Pool()
	podNS, podPath := c.podNS("dual")
	const id = "d0a1d0a1"
	conf := c.conf(map[string]any{"ipam": map[string]any{"type": "petrel-ipam", "assign_ipv4": "true", "assign_ipv6": "true"}})

	out, err := c.plugin("ADD", id, podPath, "eth0", conf)
	if err != nil {
		t.Fatal(err)
	}
	var res types100.Result
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) != 2 || len(res.Routes) != 2 {
		t.Fatalf("ADD result (%v): %s", err, out)
	}
	for i, want := range []struct {
		bits    int
		gw, dst string
	}{{32, "169.254.1.1", "0.0.0.0/0"}, {128, "fe80::ecee:eeff:feee:eeee", "::/0"}} {
		ip, r := res.IPs[i], res.Routes[i]
		if ones, _ := ip.Address.Mask.Size(); ones != want.bits || ip.Gateway.String() != want.gw || ip.Interface == nil || *ip.Interface != 1 {
			t.Errorf("ADD IP %d: %s via %s, want a /%d via %s on eth0", i, ip.Address.String(), ip.Gateway, want.bits, want.gw)
		}
		if r.Dst.String() != want.dst || r.GW.String() != want.gw {
			t.Errorf("ADD route %d: %s via %s, want %s via %s", i, r.Dst.String(), r.GW, want.dst, want.gw)
		}
	}
	v4, _ := netip.AddrFromSlice(res.IPs[0].Address.IP.To4())
	v6, _ := netip.AddrFromSlice(res.IPs[1].Address.IP)
	if got := c.handleAddrs(id); len(got) != 2 || got[0] != v4 && got[1] != v4 || got[0] != v6 && got[1] != v6 {
		t.Fatalf("handle holds %v, want %s and %s", got, v4, v6)
	}
	hostIf := dataplane.HostVethName("web", "nginx-"+id)
	c.assertDualStackPod(podNS, hostIf, v4, v6)

	var prev map[string]any
	json.Unmarshal(out, &prev)
	checkConf := func() []byte {
		return c.conf(map[string]any{"ipam": map[string]any{"type": "petrel-ipam", "assign_ipv6": "true"}, "prevResult": prev})
	}
	if _, err := c.plugin("CHECK", id, podPath, "eth0", checkConf()); err != nil {
		t.Errorf("CHECK after ADD: %v", err)
	}

	// ADD again: the same two addresses, nothing new.
	out2, err := c.plugin("ADD", id, podPath, "eth0", conf)
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	var res2 types100.Result
	json.Unmarshal(out2, &res2)
	if len(res2.IPs) != 2 || !res2.IPs[0].Address.IP.Equal(res.IPs[0].Address.IP) || !res2.IPs[1].Address.IP.Equal(res.IPs[1].Address.IP) {
		t.Errorf("second ADD gave %s, first %s", out2, out)
	}
	if got := c.handleAddrs(id); len(got) != 2 {
		t.Errorf("after the second ADD the handle holds %v", got)
	}
	c.ipamClean()

	// CHECK notices a missing IPv6 default route.
	run(t, "ip", "-n", podNS, "-6", "route", "del", "default")
	if _, err := c.plugin("CHECK", id, podPath, "eth0", checkConf()); err == nil {
		t.Error("CHECK passed without the pod's IPv6 default route")
	}

	// DEL: both addresses released under the one handle, IPAM clean.
	if _, err := c.plugin("DEL", id, podPath, "eth0", conf); err != nil {
		t.Fatal(err)
	}
	if got := c.handleAddrs(id); len(got) != 0 {
		t.Errorf("after DEL the handle holds %v", got)
	}
	if r := c.node.MustRun(t, "ip", "-6", "route", "show", v6.String()); strings.TrimSpace(r) != "" {
		t.Errorf("IPv6 host route left after DEL: %s", r)
	}
	c.ipamClean()
	c.ipamCheckCLI()
}

// TestWorkloadAddDualStack: `petrel workload add --ipv6` prints and plumbs
// an address of each family, `--ipv4=false --ipv6` an IPv6 one only;
// `petrel ipam show / allocate / release` cover the IPv6 pool, and after
// `workload del` nothing is left and `petrel ipam check` is clean.
func TestWorkloadAddDualStack(t *testing.T) {
	c := newCNILab(t)
	c.addIPv6Pool()
	dualNS, _ := c.podNS("wdual")
	v6NS, _ := c.podNS("wv6")

	lines := strings.Fields(c.mustPetrel("workload", "add", "--name", "default/dual", "--netns", dualNS, "--ipv6"))
	if len(lines) != 2 {
		t.Fatalf("workload add --ipv6 printed %q, want two addresses", lines)
	}
	v4, err4 := netip.ParseAddr(lines[0])
	v6, err6 := netip.ParseAddr(lines[1])
	if err4 != nil || err6 != nil || !v4.Is4() || !v6.Is6() {
		t.Fatalf("workload add --ipv6 printed %q, want the IPv4 then the IPv6 address", lines)
	}
	c.assertDualStackPod(dualNS, dataplane.HostVethName("default", "dual"), v4, v6)

	only := strings.TrimSpace(c.mustPetrel("workload", "add", "--name", "default/v6only", "--netns", v6NS, "--ipv4=false", "--ipv6"))
	a6, err := netip.ParseAddr(only)
	if err != nil || !podPoolV6.Contains(a6) {
		t.Fatalf("workload add --ipv4=false --ipv6 printed %q", only)
	}
	if a := run(t, "ip", "-n", v6NS, "-4", "addr", "show", "dev", "eth0"); strings.Contains(a, "inet ") {
		t.Errorf("IPv6-only pod has an IPv4 address:\n%s", a)
	}
	c.node.MustRun(t, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "5", a6.String())
	if out, err := c.petrel("workload", "add", "--name", "default/none", "--netns", v6NS, "--ipv4=false"); err == nil || !strings.Contains(out, "no address family") {
		t.Errorf("workload add --ipv4=false: %v\n%s", err, out)
	}

	// ipam allocate / release / show on the IPv6 pool.
	got := strings.TrimSpace(c.mustPetrel("ipam", "allocate", "--handle", "v6-vip", "--ipv4=false", "--ipv6"))
	vip, err := netip.ParseAddr(got)
	if err != nil || !podPoolV6.Contains(vip) {
		t.Fatalf("ipam allocate --ipv6 printed %q", got)
	}
	show := c.mustPetrel("ipam", "show")
	if !strings.Contains(show, podPoolV6.String()) || !strings.Contains(show, "10.244.0.0/16") {
		t.Errorf("ipam show lacks a pool:\n%s", show)
	}
	for _, l := range strings.Split(show, "\n") {
		f := strings.Fields(l)
		if i := slices.Index(f, podPoolV6.String()); i >= 0 && (len(f) < i+3 || f[i+2] != "3") {
			t.Errorf("ipam show: the IPv6 pool should have 3 addresses in use: %q", l)
		}
	}
	if out := c.mustPetrel("ipam", "release", "--ip", vip.String()); !strings.Contains(out, "released 1 address") {
		t.Errorf("ipam release --ip %s: %s", vip, out)
	}

	if out := c.mustPetrel("workload", "del", "--name", "default/dual", "--netns", dualNS); !strings.Contains(out, "released 2 address") {
		t.Errorf("workload del of the dual-stack pod: %s", out)
	}
	if out := c.mustPetrel("workload", "del", "--name", "default/v6only", "--netns", v6NS); !strings.Contains(out, "released 1 address") {
		t.Errorf("workload del of the IPv6-only pod: %s", out)
	}
	if links, _ := exec.Command("ip", "-n", c.node.NS, "-o", "link").CombinedOutput(); strings.Contains(string(links), "cali") {
		t.Errorf("veth left after workload del:\n%s", links)
	}
	c.ipamClean()
	c.ipamCheckCLI()
}
