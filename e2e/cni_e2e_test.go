package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/backends"
	etcdcfg "github.com/petrel-net/petrel/datastore/etcd"
	"github.com/petrel-net/petrel/e2e/harness"
	"github.com/petrel-net/petrel/internal/netnsrun"
	"github.com/petrel-net/petrel/internal/testenv/etcdserver"
	"github.com/petrel-net/petrel/ipam"
)

// cniLab is one node namespace running the CNI plugin against a real etcd.
// etcd runs on the host's loopback (so the test reads it through the Go
// API); a small TCP relay listening on the node's loopback makes it
// reachable from inside the node, where the plugin runs.
type cniLab struct {
	t      *testing.T
	node   *harness.Node
	binDir string
	// the conflist's petrel-cni entry, its version and network name
	plugin0             map[string]any
	cniVersion, netName string
	b                   datastore.Backend
	ipam                *ipam.Client
}

func newCNILab(t *testing.T) *cniLab {
	t.Helper()
	return newCNILabOn(t, etcdserver.Start(t), etcdcfg.Config{})
}

// newCNILabOn is newCNILab on a given etcd, reached with creds (its
// endpoint filled in); install-cni gets the same TLS files.
func newCNILabOn(t *testing.T, etcd *etcdserver.Server, creds etcdcfg.Config) *cniLab {
	t.Helper()
	lab := harness.New(t)
	node := lab.Node("cni1")
	creds.Endpoints = etcd.Endpoint
	b, _, err := backends.Open(t.Context(), backends.Settings{Type: "etcdv3", Etcd: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	u, err := url.Parse(etcd.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	relay := relayInto(t, "/var/run/netns/"+node.NS, u.Host)

	// The plugins, binaries and conflist, laid out by install-cni.
	binDir, netDir := t.TempDir(), t.TempDir()
	if out, err := exec.Command(petrelBin, "install-cni", "--cni-bin-dir", binDir, "--cni-net-dir", netDir,
		"--nodename", "cni1", "--datastore-type", "etcdv3", "--etcd-endpoints", u.Scheme+"://"+relay, "--mtu", "1410",
		"--etcd-ca-cert-file", creds.CACertFile, "--etcd-cert-file", creds.CertFile, "--etcd-key-file", creds.KeyFile,
		"--serviceaccount-dir", filepath.Join(netDir, "none")).CombinedOutput(); err != nil {
		t.Fatalf("install-cni: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(netDir, "10-petrel.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(data, &list); err != nil || len(list.Plugins) == 0 || list.Plugins[0]["type"] != "petrel-cni" {
		t.Fatalf("installed conflist (%v):\n%s", err, data)
	}

	o, _ := datastore.New(datastore.KindIPPool)
	pool := o.(*datastore.IPPool)
	pool.Name = "default-ipv4-ippool"
	pool.Spec = datastore.IPPoolSpec{CIDR: "10.244.0.0/16", BlockSize: 26, VXLANMode: "Always"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return &cniLab{t: t, node: node, binDir: binDir, plugin0: list.Plugins[0], cniVersion: list.CNIVersion, netName: list.Name, b: b, ipam: ipam.New(b)}
}

// relayInto listens on 127.0.0.1 inside the namespace at nsPath and
// forwards every connection to target, dialled from the test's namespace.
func relayInto(t *testing.T, nsPath, target string) string {
	t.Helper()
	var l net.Listener
	err := netnsrun.RunPath(nsPath, func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	})
	if err != nil {
		t.Fatalf("relay into %s: %v", nsPath, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); done <- struct{}{} }()
				go func() { io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return l.Addr().String()
}

// podNS creates a pod network namespace and returns its path.
func (c *cniLab) podNS(name string) (string, string) {
	c.t.Helper()
	ns := c.node.NS + "-" + name
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		c.t.Fatalf("ip netns add %s: %v\n%s", ns, err, out)
	}
	c.t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	return ns, "/var/run/netns/" + ns
}

func (c *cniLab) conf(extra map[string]any) []byte {
	// What libcni hands a plugin of a conflist: its entry plus the list's
	// cniVersion and name.
	conf := map[string]any{"cniVersion": c.cniVersion, "name": c.netName}
	for k, v := range c.plugin0 {
		conf[k] = v
	}
	for k, v := range extra {
		conf[k] = v
	}
	b, _ := json.Marshal(conf)
	return b
}

// plugin runs petrel-cni inside the node with the CNI environment and conf
// on stdin; it returns stdout and the error (with stderr) if it failed.
func (c *cniLab) plugin(command, containerID, netnsPath, ifName string, conf []byte) ([]byte, error) {
	c.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", c.node.NS, filepath.Join(c.binDir, "petrel-cni"))
	cmd.Env = append(os.Environ(),
		"CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID, "CNI_NETNS="+netnsPath, "CNI_IFNAME="+ifName,
		"CNI_PATH="+c.binDir, "CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=nginx-"+containerID)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(conf), &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("petrel-cni %s: %w\nstdout: %s\nstderr: %s", command, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), err
}

func (c *cniLab) handleAddrs(containerID string) []netip.Addr {
	c.t.Helper()
	addrs, err := c.ipam.HandleAddrs(context.Background(), "k8s-pod-network."+containerID)
	if err != nil {
		c.t.Fatal(err)
	}
	return addrs
}

func (c *cniLab) ipamClean() {
	c.t.Helper()
	r, err := c.ipam.Check(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	if !r.OK() {
		c.t.Errorf("ipam check:\n%s", r)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestCNIPluginAddCheckDel(t *testing.T) {
	c := newCNILab(t)
	podNS, podPath := c.podNS("pod1")
	const id = "c0ffee01"

	// ADD.
	out, err := c.plugin("ADD", id, podPath, "eth0", c.conf(nil))
	if err != nil {
		t.Fatal(err)
	}
	var res types100.Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ADD result: %v\n%s", err, out)
	}
	if res.CNIVersion != "1.0.0" || len(res.IPs) != 1 || len(res.Interfaces) != 2 {
		t.Fatalf("ADD result: %s", out)
	}
	ip := res.IPs[0]
	addr, _ := netip.AddrFromSlice(ip.Address.IP.To4())
	if ones, _ := ip.Address.Mask.Size(); ones != 32 || !netip.MustParsePrefix("10.244.0.0/16").Contains(addr) {
		t.Fatalf("ADD address %s, want a /32 of the pool", ip.Address.String())
	}
	if ip.Interface == nil || *ip.Interface != 1 || res.Interfaces[1].Name != "eth0" || res.Interfaces[1].Sandbox != podPath || res.Interfaces[1].Mac == "" {
		t.Fatalf("ADD interfaces: %s", out)
	}
	hostIf := dataplane.HostVethName("web", "nginx-"+id)
	if res.Interfaces[0].Name != hostIf || res.Interfaces[0].Mac != "ee:ee:ee:ee:ee:ee" || res.Interfaces[0].Sandbox != "" {
		t.Fatalf("ADD host interface: %s", out)
	}
	if len(res.Routes) != 1 || res.Routes[0].Dst.String() != "0.0.0.0/0" || res.Routes[0].GW.String() != "169.254.1.1" {
		t.Fatalf("ADD routes: %s", out)
	}
	if got := c.handleAddrs(id); len(got) != 1 || got[0] != addr {
		t.Fatalf("handle holds %v, want %s", got, addr)
	}
	if a, err := c.b.Get(context.Background(), datastore.KindIPAMHandle, "k8s-pod-network."+id); err != nil || a == nil {
		t.Fatalf("no IPAM handle: %v", err)
	}

	podAddrs := run(t, "ip", "-n", podNS, "-4", "addr", "show", "dev", "eth0")
	if !strings.Contains(podAddrs, "inet "+addr.String()+"/32") || !strings.Contains(podAddrs, "mtu 1410") {
		t.Errorf("pod eth0:\n%s", podAddrs)
	}
	if routes := run(t, "ip", "-n", podNS, "-4", "route"); !strings.Contains(routes, "default via 169.254.1.1 dev eth0") {
		t.Errorf("pod routes:\n%s", routes)
	}
	if routes := c.node.MustRun(t, "ip", "-4", "route", "show", addr.String()); !strings.Contains(routes, "dev "+hostIf) {
		t.Errorf("node route to the pod:\n%s", routes)
	}

	// CHECK with the ADD result as prevResult.
	var prev map[string]any
	json.Unmarshal(out, &prev)
	if _, err := c.plugin("CHECK", id, podPath, "eth0", c.conf(map[string]any{"prevResult": prev})); err != nil {
		t.Errorf("CHECK after ADD: %v", err)
	}

	// ADD again: same address, nothing new.
	out2, err := c.plugin("ADD", id, podPath, "eth0", c.conf(nil))
	if err != nil {
		t.Fatalf("second ADD: %v", err)
	}
	var res2 types100.Result
	json.Unmarshal(out2, &res2)
	if len(res2.IPs) != 1 || !res2.IPs[0].Address.IP.Equal(ip.Address.IP) {
		t.Errorf("second ADD gave %s, first %s", out2, out)
	}
	if got := c.handleAddrs(id); len(got) != 1 {
		t.Errorf("after the second ADD the handle holds %v", got)
	}
	c.ipamClean()

	// CHECK notices broken plumbing.
	run(t, "ip", "-n", podNS, "route", "del", "default")
	if _, err := c.plugin("CHECK", id, podPath, "eth0", c.conf(map[string]any{"prevResult": prev})); err == nil {
		t.Error("CHECK passed without the pod's default route")
	}

	// VERSION.
	if out, err := c.plugin("VERSION", "", "", "", []byte(`{"cniVersion": "1.0.0"}`)); err != nil || !strings.Contains(string(out), `"1.0.0"`) {
		t.Errorf("VERSION: %s %v", out, err)
	}

	// DEL: veth gone, address released; DEL again is fine.
	if _, err := c.plugin("DEL", id, podPath, "eth0", c.conf(nil)); err != nil {
		t.Fatal(err)
	}
	if links := c.node.MustRun(t, "ip", "-o", "link"); strings.Contains(links, hostIf) {
		t.Errorf("host veth %s still there:\n%s", hostIf, links)
	}
	if links := run(t, "ip", "-n", podNS, "-o", "link"); strings.Contains(links, "eth0") {
		t.Errorf("pod eth0 still there:\n%s", links)
	}
	if got := c.handleAddrs(id); len(got) != 0 {
		t.Errorf("after DEL the handle holds %v", got)
	}
	c.ipamClean()
	if _, err := c.plugin("DEL", id, podPath, "eth0", c.conf(nil)); err != nil {
		t.Errorf("second DEL: %v", err)
	}
	// DEL after the sandbox's namespace is gone.
	run(t, "ip", "netns", "del", podNS)
	if _, err := c.plugin("DEL", id, podPath, "eth0", c.conf(nil)); err != nil {
		t.Errorf("DEL without the netns: %v", err)
	}
}

func TestCNIPluginFailedAddLeavesNothing(t *testing.T) {
	c := newCNILab(t)
	const id = "deadbeef"

	// No such namespace: refused before anything is allocated.
	_, err := c.plugin("ADD", id, "/var/run/netns/"+c.node.NS+"-missing", "eth0", c.conf(nil))
	if err == nil || !strings.Contains(err.Error(), "CNI_NETNS") {
		t.Fatalf("ADD into a missing netns: %v", err)
	}
	if got := c.handleAddrs(id); len(got) != 0 {
		t.Errorf("failed ADD left %v allocated", got)
	}

	// The namespace disappears after IPAM: the plumbing fails, the address
	// is released. A namespace that is a plain file makes the netns open
	// fail after the existence check.
	fake := filepath.Join(t.TempDir(), "not-a-netns")
	os.WriteFile(fake, nil, 0o644)
	if _, err := c.plugin("ADD", id, fake, "eth0", c.conf(nil)); err == nil {
		t.Fatal("ADD into a file that is no netns succeeded")
	}
	if got := c.handleAddrs(id); len(got) != 0 {
		t.Errorf("failed ADD left %v allocated", got)
	}
	if links := c.node.MustRun(t, "ip", "-o", "link"); strings.Contains(links, "cali") {
		t.Errorf("failed ADD left a veth:\n%s", links)
	}

	// Another interface name is refused with a clear error.
	_, podPath := c.podNS("pod2")
	_, err = c.plugin("ADD", id, podPath, "net1", c.conf(nil))
	if err == nil || !strings.Contains(err.Error(), "CNI_IFNAME") {
		t.Errorf("ADD with ifname net1: %v", err)
	}
	// A config error names the field.
	_, err = c.plugin("ADD", id, podPath, "eth0", c.conf(map[string]any{"mtu": "big"}))
	if err == nil || !strings.Contains(err.Error(), `field \"mtu\"`) || !strings.Contains(err.Error(), `"code": 7`) {
		t.Errorf("ADD with a bad mtu: %v", err)
	}
	if got := c.handleAddrs(id); len(got) != 0 {
		t.Errorf("failed ADDs left %v allocated", got)
	}
	c.ipamClean()

	// No IPAM plugin on CNI_PATH: an error, nothing allocated.
	_, err = c.plugin("ADD", id, podPath, "eth0", c.conf(map[string]any{"ipam": map[string]any{"type": "no-such-ipam"}}))
	if err == nil || !strings.Contains(err.Error(), "no-such-ipam") {
		t.Errorf("ADD with a missing IPAM plugin: %v", err)
	}
}

// TestCNIPluginWithCNITool drives the installed plugin through libcni, the
// way a container runtime does (cnitool: ADD, CHECK from the cached result,
// DEL), with a conflist holding only the petrel-cni entry (portmap is not
// installed here).
func TestCNIPluginWithCNITool(t *testing.T) {
	c := newCNILab(t)
	tool := buildCNITool(t)
	netDir := t.TempDir()
	list := map[string]any{"cniVersion": c.cniVersion, "name": c.netName, "plugins": []any{c.plugin0}}
	data, _ := json.Marshal(list)
	if err := os.WriteFile(filepath.Join(netDir, "10-petrel.conflist"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	podNS, podPath := c.podNS("tool")
	cleanCNICache(t) // libcni caches results under /var/lib/cni
	cnitool := func(verb string) (string, error) {
		cmd := exec.Command("ip", "netns", "exec", c.node.NS, tool, verb, c.netName, podPath)
		cmd.Env = append(os.Environ(), "NETCONFPATH="+netDir, "CNI_PATH="+c.binDir, "CNI_IFNAME=eth0",
			"CNI_ARGS=K8S_POD_NAMESPACE=tools;K8S_POD_NAME=cnitool-pod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("cnitool %s: %w\n%s", verb, err, out)
		}
		return string(out), nil
	}
	out, err := cnitool("add")
	if err != nil {
		t.Fatal(err)
	}
	var res types100.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 {
		t.Fatalf("cnitool add printed (%v):\n%s", err, out)
	}
	if addrs := run(t, "ip", "-n", podNS, "-4", "addr", "show", "dev", "eth0"); !strings.Contains(addrs, res.IPs[0].Address.String()) {
		t.Errorf("pod eth0 lacks %s:\n%s", res.IPs[0].Address.String(), addrs)
	}
	if _, err := cnitool("check"); err != nil {
		t.Error(err)
	}
	if _, err := cnitool("del"); err != nil {
		t.Fatal(err)
	}
	if links := c.node.MustRun(t, "ip", "-o", "link"); strings.Contains(links, "cali") {
		t.Errorf("veth left after cnitool del:\n%s", links)
	}
	c.ipamClean()
	if _, err := cnitool("del"); err != nil {
		t.Errorf("second del: %v", err)
	}
}
