package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/nodeaddr"
	petrelpb "github.com/petrel-net/petrel/proto"
)

func hostOf(cidr string) string { h, _, _ := strings.Cut(cidr, "/"); return h }

func (b *builder) startProc(n *NodeState, name string, env []string, args ...string) (*proc, error) {
	return b.track(start(b.state.Name, n.NS, b.logPath(n, name), b.pidPath(n, name), env, args...))
}

// startRaw is startProc for a command line that enters the node's
// namespaces itself.
func (b *builder) startRaw(n *NodeState, name string, args ...string) (*proc, error) {
	p, err := b.track(startCmd(b.state.Name, b.logPath(n, name), b.pidPath(n, name), nil, args))
	if p != nil {
		p.name = name
	}
	return p, err
}

func (b *builder) logPath(n *NodeState, name string) string {
	return filepath.Join(b.dir, "logs", n.Name+"-"+name+".log")
}

func (b *builder) pidPath(n *NodeState, name string) string {
	return filepath.Join(b.dir, "pids", n.Name+"-"+name+".pid")
}

func (b *builder) track(p *proc, err error) (*proc, error) {
	if err == nil {
		b.procs = append(b.procs, p)
	}
	return p, err
}

// waitFor polls probe, giving up early (with the log's tail) if p exits.
func waitFor(p *proc, what string, timeout time.Duration, probe func() error) error {
	err := poll(timeout, 100*time.Millisecond, func() error {
		if p.exited() {
			return errExited
		}
		return probe()
	})
	if errors.Is(err, errExited) || p.exited() {
		return fmt.Errorf("%s exited during startup; last lines of %s:\n%s", what, p.log, tailFile(p.log, 20))
	}
	if err != nil {
		return fmt.Errorf("%s not ready after %v: %w", what, timeout, err)
	}
	return nil
}

var errExited = errors.New("exited")

func tailFile(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (b *builder) startEtcd() error {
	n := b.node("etcd")
	// Both families when it has both: an IPv6-only node reaches it over
	// IPv6, the others over IPv4 (clientv3 skips an endpoint it cannot
	// reach).
	var urls []string
	for _, a := range []string{n.Addr, n.Addr6} {
		if a != "" {
			urls = append(urls, "http://"+net.JoinHostPort(hostOf(a), "2379"))
		}
	}
	if len(urls) == 0 {
		return fmt.Errorf("etcd node %s has no IPv4 or IPv6 address (give it one with a link's ipv4/ipv6 or exec: [ip addr add ... dev eth1])", n.Name)
	}
	b.state.EtcdURL = strings.Join(urls, ",")
	b.step("starting etcd on %s (%s)", n.Name, b.state.EtcdURL)
	p, err := b.startProc(n, "etcd", nil, etcdArgs(filepath.Join(b.dir, "etcd"), b.state.EtcdURL)...)
	if err != nil {
		return err
	}
	if err := b.save(); err != nil {
		return err
	}
	return waitFor(p, "etcd", 20*time.Second, func() error {
		_, err := inNS(n.NS, b.opts.Petrel, "get", "ippools", "--datastore-type", "etcdv3", "--etcd-endpoints", b.state.EtcdURL)
		return err
	})
}

// etcdArgs runs a one-member etcd serving clientURL (URLs, comma-separated).
func etcdArgs(dataDir, clientURL string) []string {
	return []string{"etcd", "--data-dir", dataDir, "--name", "lab",
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "lab=http://127.0.0.1:2380"}
}

func (b *builder) startBird(n *NodeState) error {
	if n.Addr == "" && n.Addr6 == "" {
		return fmt.Errorf("bird node %s has no IPv4 or IPv6 address", n.Name)
	}
	rr := ""
	if b.topo.Topology.Nodes[n.Name].RouteReflector() {
		rr = "  rr client;\n"
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "log stderr all;\nrouter id %s;\nprotocol device { scan time 1; }\n", routerID(n))
	// One session per family and petrel node, each from BIRD's own
	// address of that family, as calico-node's bird and bird6 peer.
	for _, fam := range []struct {
		channel, self, suffix string
		peers                 [][2]string
	}{{"ipv4", n.Addr, "", b.petrelAddrs()}, {"ipv6", n.Addr6, "_v6", b.petrelAddrs6()}} {
		if fam.self == "" {
			continue
		}
		fmt.Fprintf(&conf, "protocol direct { %s; interface \"-lo\", \"*\"; }\nprotocol kernel { %s { export all; }; merge paths on; }\n", fam.channel, fam.channel)
		for _, p := range fam.peers {
			fmt.Fprintf(&conf, "protocol bgp %s%s {\n  local as 64512;\n  neighbor %s as 64512;\n  source address %s;\n  connect retry time 1;\n  connect delay time 1;\n  error wait time 1, 5;\n  graceful restart on;\n%s  %s { import all; export all; };\n}\n",
				strings.ReplaceAll(p[0], "-", "_"), fam.suffix, hostOf(p[1]), hostOf(fam.self), rr, fam.channel)
		}
	}
	confPath := filepath.Join(b.dir, n.Name+"-bird.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	n.Socket = filepath.Join(b.dir, n.Name+"-bird.ctl")
	if rr != "" {
		b.step("starting BIRD on %s (%s), route reflector for the petrel nodes", n.Name, n.addrs(true))
	} else {
		b.step("starting BIRD on %s (%s)", n.Name, n.addrs(true))
	}
	p, err := b.startProc(n, "bird", nil, "bird", "-f", "-c", confPath, "-s", n.Socket, "-P", filepath.Join(b.dir, n.Name+"-bird.pid"))
	if err != nil {
		return err
	}
	return waitFor(p, "bird on "+n.Name, 10*time.Second, func() error {
		_, err := run("birdc", "-s", n.Socket, "show", "status")
		return err
	})
}

// petrelAddrs and petrelAddrs6 list the petrel nodes' IPv4 and IPv6
// addresses (CIDR), by node name, for the routers to peer with.
func (b *builder) petrelAddrs() [][2]string  { return b.petrelAddrsOf(b.petrelAddr) }
func (b *builder) petrelAddrs6() [][2]string { return b.petrelAddrsOf(b.petrelAddr6) }

func (b *builder) petrelAddrsOf(addr func(*NodeState) string) [][2]string {
	var res [][2]string
	for _, p := range b.petrels() {
		if a := addr(p); a != "" {
			res = append(res, [2]string{p.Name, a})
		}
	}
	return res
}

// petrelAddr and petrelAddr6 are the addresses a petrel node's daemon
// uses: the topology's env IP or IP6, else the node's first global
// address of the family; "" for none.
func (b *builder) petrelAddr(n *NodeState) string {
	return envAddr(b.topo.Topology.Nodes[n.Name].Env[config.EnvIP], n.Addr)
}

func (b *builder) petrelAddr6(n *NodeState) string {
	return envAddr(b.topo.Topology.Nodes[n.Name].Env[config.EnvIP6], n.Addr6)
}

// envAddr is an IP or IP6 setting as an address: none is "", autodetect
// (or unset) the node's own.
func envAddr(setting, own string) string {
	switch setting {
	case nodeaddr.ValueNone:
		return ""
	case "", nodeaddr.ValueAutodetect:
		return own
	}
	return setting
}

// routerID is a router's BGP router ID: its IPv4 address, else one
// derived from its name (as CALICO_ROUTER_ID=hash does for IPv6-only
// nodes).
func routerID(n *NodeState) string {
	if n.Addr != "" {
		return hostOf(n.Addr)
	}
	return config.HashRouterID(n.Name).String()
}

// addrs are a node's addresses, joined: "10.0.0.1/24,fd00:10::1/64", or
// without their prefix lengths when hosts ("10.0.0.1, fd00:10::1").
func (n *NodeState) addrs(hosts bool) string {
	var as []string
	for _, a := range []string{n.Addr, n.Addr6} {
		switch {
		case a == "":
		case hosts:
			as = append(as, hostOf(a))
		default:
			as = append(as, a)
		}
	}
	if hosts {
		return strings.Join(as, ", ")
	}
	return strings.Join(as, ",")
}

// frrDaemons are what an FRR BGP speaker needs: zebra (interfaces, the RIB
// and the kernel routes), staticd and bgpd.
var frrDaemons = []string{"zebra", "staticd", "bgpd"}

// startFRR runs FRR (zebra, staticd, bgpd in the foreground, as user frr)
// peering iBGP with every petrel node, a route reflector for them when
// the node is labelled so. Its files are in <dir>/<node>-frr/ (owned by
// frr); vtysh --vty_socket that directory talks to it.
func (b *builder) startFRR(n *NodeState) error {
	if n.Addr == "" {
		return fmt.Errorf("frr node %s has no IPv4 address", n.Name)
	}
	rr := b.topo.Topology.Nodes[n.Name].RouteReflector()
	var conf, af strings.Builder
	fmt.Fprintf(&conf, "frr defaults traditional\nhostname %s\nlog stdout\nip forwarding\n!\nrouter bgp 64512\n bgp router-id %s\n no bgp ebgp-requires-policy\n bgp graceful-restart\n", n.Name, hostOf(n.Addr))
	for _, p := range b.petrelAddrs() {
		a := hostOf(p[1])
		fmt.Fprintf(&conf, " neighbor %s remote-as 64512\n neighbor %s description %s\n neighbor %s update-source %s\n neighbor %s timers connect 1\n", a, a, p[0], a, hostOf(n.Addr), a)
		if rr {
			fmt.Fprintf(&af, "  neighbor %s route-reflector-client\n", a)
		}
	}
	fmt.Fprintf(&conf, " !\n address-family ipv4 unicast\n  redistribute connected\n%s exit-address-family\n!\n", af.String())
	dir := filepath.Join(b.dir, n.Name+"-frr")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	confPath := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o640); err != nil {
		return err
	}
	if out, err := run("chown", "-R", "frr:frr", dir); err != nil {
		return fmt.Errorf("frr node %s: %w (is FRR installed?) %s", n.Name, err, out)
	}
	if _, err := run("vtysh", "--dryrun", "--inputfile", confPath); err != nil {
		return fmt.Errorf("frr node %s: config rejected: %w", n.Name, err)
	}
	n.Socket = dir
	what := ""
	if rr {
		what = ", route reflector for the petrel nodes"
	}
	b.step("starting FRR on %s (%s)%s", n.Name, hostOf(n.Addr), what)
	zserv := filepath.Join(dir, "zserv.api")
	var last *proc
	for _, d := range frrDaemons {
		p, err := b.startProc(n, d, nil, filepath.Join("/usr/lib/frr", d), "-u", "frr", "-g", "frr",
			"-i", filepath.Join(dir, d+".pid"), "-z", zserv, "--vty_socket", dir, "-f", confPath)
		if err != nil {
			return err
		}
		last = p
		if d == "zebra" {
			// The others retry a missing zebra only after 10s.
			if err := waitFor(p, "zebra on "+n.Name, 10*time.Second, func() error { _, err := os.Stat(zserv); return err }); err != nil {
				return err
			}
		}
	}
	return waitFor(last, "bgpd on "+n.Name, 10*time.Second, func() error {
		for _, d := range frrDaemons {
			if _, err := os.Stat(filepath.Join(dir, d+".vty")); err != nil {
				return err
			}
		}
		_, err := run("vtysh", "--vty_socket", dir, "-c", "show bgp summary")
		return err
	})
}

func (b *builder) startPetrel(n *NodeState) error {
	topoEnv := b.topo.Topology.Nodes[n.Name].Env
	env := map[string]string{"NODENAME": n.Name, "DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": b.state.EtcdURL}
	switch {
	case n.Addr != "":
		env[config.EnvIP] = n.Addr
	case n.Addr6 != "":
		env[config.EnvIP] = nodeaddr.ValueNone // IPv6 only
	}
	if n.Addr6 != "" {
		env[config.EnvIP6] = n.Addr6
	}
	if b.state.KubeAPI != nil {
		env["KUBECONFIG"] = b.state.KubeAPI.Kubeconfig // Services (docs/services.md)
	}
	for k, v := range topoEnv {
		env[k] = v
	}
	v4, v6 := envAddr(env[config.EnvIP], n.Addr), envAddr(env[config.EnvIP6], n.Addr6)
	if v4 == "" && v6 == "" {
		return fmt.Errorf("petrel node %s has no IPv4 or IPv6 address (links' ipv4/ipv6, exec: [ip addr add ...] or env IP/IP6)", n.Name)
	}
	if v4 == "" && env[config.EnvRouterID] == "" {
		env[config.EnvRouterID] = "hash" // no IPv4 address to be the router ID
	}
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)
	n.Socket = filepath.Join(b.dir, n.Name+".sock")
	b.step("starting petrel daemon on %s (%s)", n.Name, strings.Join(slices.DeleteFunc([]string{v4, v6}, func(a string) bool { return a == "" }), ", "))
	p, err := b.startProc(n, "petrel", envList, b.opts.Petrel, "daemon", "--socket", n.Socket)
	if err != nil {
		return err
	}
	return waitFor(p, "petrel on "+n.Name, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := cli.Dial(ctx, n.Socket)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.GetInfo(ctx, &petrelpb.GetInfoRequest{})
		return err
	})
}
