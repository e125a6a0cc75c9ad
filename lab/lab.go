package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/internal/netnsbuild"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// StateRoot holds one directory per lab: state.json, the topology, pid
// files, logs, sockets and etcd's data.
const StateRoot = "/var/run/petrel-lab"

// NSPrefix starts every namespace a lab creates: "plab-<name>-<node>".
const NSPrefix = "plab-"

// DefaultResources are applied to the lab's etcd before any node starts:
// the seed's IPPool.
const DefaultResources = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: CrossSubnet, ipipMode: Never, natOutgoing: true, nodeSelector: all(), allowedUses: [Workload, Tunnel]}
`

// State is what `up` recorded, in <dir>/state.json; `status` reads it.
type State struct {
	Name     string      `json:"name"`
	Topology string      `json:"topology"`
	Petrel   string      `json:"petrel,omitempty"` // the binary the daemons run
	EtcdURL  string      `json:"etcdURL,omitempty"`
	Nodes    []NodeState `json:"nodes"`
	Pods     []PodState  `json:"pods,omitempty"`
	Ready    bool        `json:"ready"`
}

// NodeState is one topology node as built.
type NodeState struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Role   string `json:"role,omitempty"`
	NS     string `json:"netns"`
	Addr   string `json:"address,omitempty"`
	Socket string `json:"socket,omitempty"` // petrel's API or birdc's socket
}

// PodState is one pod.
type PodState struct {
	Name string `json:"name"` // NAMESPACE/POD as given to petrel workload add
	Node string `json:"node"`
	NS   string `json:"netns"`
	Addr string `json:"address"`
}

// Dir is the lab's state directory.
func Dir(name string) string { return filepath.Join(StateRoot, name) }

// NSName is the namespace of a node of lab name.
func NSName(lab, node string) string { return NSPrefix + lab + "-" + node }

// Options configure Up.
type Options struct {
	Petrel string    // the petrel binary the lab runs (default: this executable)
	Out    io.Writer // progress lines
}

type builder struct {
	opts  Options
	topo  *Topology
	dir   string
	state State
	procs []*proc
}

func (b *builder) step(format string, args ...any) {
	fmt.Fprintf(b.opts.Out, "[%s] %s\n", b.state.Name, fmt.Sprintf(format, args...))
}

func (b *builder) save() error {
	data, err := json.MarshalIndent(b.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(b.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.dir, "state.json"))
}

// Exists reports whether anything of lab name is there: its state
// directory or a namespace with its prefix.
func Exists(name string) bool {
	if _, err := os.Stat(Dir(name)); err == nil {
		return true
	}
	nss, _ := netnsbuild.List()
	for _, ns := range nss {
		if strings.HasPrefix(ns, NSPrefix+name+"-") {
			return true
		}
	}
	return false
}

// Up builds the lab described by the topology file.
func Up(ctx context.Context, topoPath string, opts Options) error {
	topo, err := LoadTopology(topoPath)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("petrel lab needs root (network namespaces)")
	}
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Petrel == "" {
		if opts.Petrel, err = os.Executable(); err != nil {
			return err
		}
	}
	if Exists(topo.Name) {
		return fmt.Errorf("lab %s already exists (remove it with: petrel lab down %s)", topo.Name, topo.Name)
	}
	b := &builder{opts: opts, topo: topo, dir: Dir(topo.Name)}
	b.state = State{Name: topo.Name, Topology: topoPath, Petrel: opts.Petrel}
	for _, d := range []string{b.dir, filepath.Join(b.dir, "pids"), filepath.Join(b.dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if raw, err := os.ReadFile(topoPath); err == nil {
		_ = os.WriteFile(filepath.Join(b.dir, "topology.clab.yml"), raw, 0o644)
	}
	if err := b.save(); err != nil {
		return err
	}
	if err := b.build(ctx); err != nil {
		return fmt.Errorf("%w\n(the lab is left as it is for inspection: petrel lab status %s; remove it with: petrel lab down %s)", err, topo.Name, topo.Name)
	}
	return nil
}

func (b *builder) build(ctx context.Context) error {
	names := b.topo.NodeNames()
	b.step("creating %d namespaces", len(names))
	for _, name := range names {
		n := b.topo.Topology.Nodes[name]
		ns := NSName(b.state.Name, name)
		if err := netnsbuild.Create(ns); err != nil {
			return err
		}
		b.state.Nodes = append(b.state.Nodes, NodeState{Name: name, Kind: n.Kind, Role: n.Role(), NS: ns})
		if err := b.save(); err != nil {
			return err
		}
		if n.Kind == "bridge" {
			if err := netnsbuild.Bridge(ns, "br0"); err != nil {
				return err
			}
			if err := netnsbuild.Up(ns, "br0"); err != nil {
				return err
			}
		} else if err := netnsbuild.Sysctl(ns, "net/ipv4/ip_forward", "1"); err != nil {
			return err
		}
	}

	b.step("creating %d links", len(b.topo.Topology.Links))
	for _, l := range b.topo.Topology.Links {
		eps, _ := l.Parse()
		if err := b.link(eps[0], eps[1]); err != nil {
			return err
		}
	}
	for _, name := range names {
		for _, c := range b.topo.Topology.Nodes[name].Exec {
			if _, err := inNS(NSName(b.state.Name, name), "sh", "-c", c); err != nil {
				return fmt.Errorf("node %s: exec: %w", name, err)
			}
		}
	}
	for i := range b.state.Nodes {
		if b.state.Nodes[i].Kind == "linux" {
			if p, err := netnsbuild.GlobalIPv4(b.state.Nodes[i].NS); err == nil {
				b.state.Nodes[i].Addr = p.String()
			}
		}
	}
	if err := b.save(); err != nil {
		return err
	}

	if err := b.startEtcd(); err != nil {
		return err
	}
	if err := b.applyResources(); err != nil {
		return err
	}
	for i := range b.state.Nodes {
		switch b.state.Nodes[i].Role {
		case "bird":
			if err := b.startBird(&b.state.Nodes[i]); err != nil {
				return err
			}
		case "frr":
			if err := b.startFRR(&b.state.Nodes[i]); err != nil {
				return err
			}
		}
	}
	for i := range b.state.Nodes {
		if b.state.Nodes[i].Role == "node" {
			if err := b.startPetrel(&b.state.Nodes[i]); err != nil {
				return err
			}
		}
	}
	if err := b.save(); err != nil {
		return err
	}
	if err := b.waitSessions(ctx); err != nil {
		return err
	}
	if err := b.addPods(); err != nil {
		return err
	}
	if err := b.waitPings(); err != nil {
		return err
	}
	b.state.Ready = true
	if err := b.save(); err != nil {
		return err
	}
	petrels := 0
	for _, n := range b.state.Nodes {
		if n.Role == "node" {
			petrels++
		}
	}
	b.step("ready: %d namespaces, %d petrel nodes, %d pods (petrel lab status %s; petrel lab down %s)", len(b.state.Nodes), petrels, len(b.state.Pods), b.state.Name, b.state.Name)
	return nil
}

func (b *builder) kind(node string) string { return b.topo.Topology.Nodes[node].Kind }

// link creates a veth between two nodes; a bridge node's end becomes a
// port of its br0. Both ends are created directly in their namespaces.
func (b *builder) link(a, z Endpoint) error {
	if b.kind(a.Node) != "bridge" && b.kind(z.Node) == "bridge" {
		a, z = z, a
	}
	aNS, zNS := NSName(b.state.Name, a.Node), NSName(b.state.Name, z.Node)
	if err := netnsbuild.Veth(aNS, a.If, zNS, z.If); err != nil {
		return err
	}
	if b.kind(a.Node) == "bridge" {
		if err := netnsbuild.SetMaster(aNS, a.If, "br0"); err != nil {
			return err
		}
	}
	for _, e := range [][2]string{{aNS, a.If}, {zNS, z.If}} {
		if err := netnsbuild.Up(e[0], e[1]); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) node(role string) *NodeState {
	for i := range b.state.Nodes {
		if b.state.Nodes[i].Role == role {
			return &b.state.Nodes[i]
		}
	}
	return nil
}

func hostOf(cidr string) string { h, _, _ := strings.Cut(cidr, "/"); return h }

func (b *builder) startProc(n *NodeState, name string, env []string, args ...string) (*proc, error) {
	p, err := start(b.state.Name, n.NS,
		filepath.Join(b.dir, "logs", n.Name+"-"+name+".log"),
		filepath.Join(b.dir, "pids", n.Name+"-"+name+".pid"), env, args...)
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
	if n.Addr == "" {
		return fmt.Errorf("etcd node %s has no IPv4 address (give it one with exec: [ip addr add ... dev eth1])", n.Name)
	}
	b.state.EtcdURL = "http://" + hostOf(n.Addr) + ":2379"
	b.step("starting etcd on %s (%s)", n.Name, b.state.EtcdURL)
	p, err := b.startProc(n, "etcd", nil, "etcd", "--data-dir", filepath.Join(b.dir, "etcd"), "--name", "lab",
		"--listen-client-urls", b.state.EtcdURL, "--advertise-client-urls", b.state.EtcdURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "lab=http://127.0.0.1:2380")
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

// petrelCmd runs a petrel client command inside ns against the lab's etcd.
func (b *builder) petrelCmd(ns string, env []string, args ...string) (string, error) {
	full := append([]string{"env", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + b.state.EtcdURL}, env...)
	return inNS(ns, append(append(full, b.opts.Petrel), args...)...)
}

func (b *builder) applyResources() error {
	docs := DefaultResources
	for _, n := range b.state.Nodes {
		if (n.Role == "bird" || n.Role == "frr") && n.Addr != "" {
			docs += fmt.Sprintf("---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: %s}\nspec: {peerIP: %s, asNumber: 64512}\n", strings.ToLower(n.Name), hostOf(n.Addr))
		}
	}
	what := "IPPool default-ipv4-ippool 192.168.0.0/16"
	if b.topo.MeshOff() {
		docs += "---\napiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {nodeToNodeMeshEnabled: false}\n"
		what += ", node-to-node mesh off"
	}
	b.step("applying the default resources (%s)", what)
	path := filepath.Join(b.dir, "resources.yaml")
	if err := os.WriteFile(path, []byte(docs), 0o644); err != nil {
		return err
	}
	_, err := b.petrelCmd(b.node("etcd").NS, nil, "apply", "-f", path)
	return err
}

func (b *builder) startBird(n *NodeState) error {
	if n.Addr == "" {
		return fmt.Errorf("bird node %s has no IPv4 address", n.Name)
	}
	rr := ""
	if b.topo.Topology.Nodes[n.Name].RouteReflector() {
		rr = "  rr client;\n"
	}
	var conf strings.Builder
	fmt.Fprintf(&conf, "log stderr all;\nrouter id %s;\nprotocol device { scan time 1; }\nprotocol direct { ipv4; interface \"-lo\", \"*\"; }\nprotocol kernel { ipv4 { export all; }; }\n", hostOf(n.Addr))
	for _, p := range b.state.Nodes {
		if p.Role != "node" {
			continue
		}
		addr := b.topo.Topology.Nodes[p.Name].Env["IP"]
		if addr == "" {
			addr = p.Addr
		}
		if addr == "" {
			continue
		}
		fmt.Fprintf(&conf, "protocol bgp %s {\n  local as 64512;\n  neighbor %s as 64512;\n  source address %s;\n  connect retry time 1;\n  connect delay time 1;\n  error wait time 1, 5;\n  graceful restart on;\n%s  ipv4 { import all; export all; };\n}\n",
			strings.ReplaceAll(p.Name, "-", "_"), hostOf(addr), hostOf(n.Addr), rr)
	}
	confPath := filepath.Join(b.dir, n.Name+"-bird.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	n.Socket = filepath.Join(b.dir, n.Name+"-bird.ctl")
	if rr != "" {
		b.step("starting BIRD on %s (%s), route reflector for the petrel nodes", n.Name, hostOf(n.Addr))
	} else {
		b.step("starting BIRD on %s (%s)", n.Name, hostOf(n.Addr))
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

// petrelAddrs lists the petrel nodes' addresses (CIDR), by node name.
func (b *builder) petrelAddrs() [][2]string {
	var res [][2]string
	for _, p := range b.state.Nodes {
		if p.Role != "node" {
			continue
		}
		addr := b.topo.Topology.Nodes[p.Name].Env["IP"]
		if addr == "" {
			addr = p.Addr
		}
		if addr != "" {
			res = append(res, [2]string{p.Name, addr})
		}
	}
	return res
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
	env := map[string]string{"NODENAME": n.Name, "IP": n.Addr, "DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": b.state.EtcdURL}
	for k, v := range topoEnv {
		env[k] = v
	}
	if env["IP"] == "" {
		return fmt.Errorf("petrel node %s has no IPv4 address (exec: [ip addr add ...] or env IP)", n.Name)
	}
	var envList []string
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)
	n.Socket = filepath.Join(b.dir, n.Name+".sock")
	b.step("starting petrel daemon on %s (%s)", n.Name, env["IP"])
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

// peers lists a petrel node's peers through its socket.
func peers(socket string) ([]*petrelpb.Peer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := cli.Dial(ctx, socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.ListPeers(ctx, &petrelpb.ListPeersRequest{})
	if err != nil {
		return nil, err
	}
	return resp.Peers, nil
}

func established(ps []*petrelpb.Peer) int {
	n := 0
	for _, p := range ps {
		if p.State == "Established" {
			n++
		}
	}
	return n
}

func (b *builder) waitSessions(ctx context.Context) error {
	var petrels []NodeState
	for _, n := range b.state.Nodes {
		if n.Role == "node" {
			petrels = append(petrels, n)
		}
	}
	if len(petrels) == 0 {
		return nil
	}
	b.step("waiting for BGP sessions")
	err := poll(90*time.Second, 250*time.Millisecond, func() error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, n := range petrels {
			ps, err := peers(n.Socket)
			if err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
			if len(ps) == 0 && len(petrels) > 1 {
				return fmt.Errorf("%s: no peers yet", n.Name)
			}
			if e := established(ps); e != len(ps) {
				return fmt.Errorf("%s: %d of %d sessions Established", n.Name, e, len(ps))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("BGP sessions: %w", err)
	}
	for _, n := range petrels {
		ps, _ := peers(n.Socket)
		b.step("%s: %d sessions Established", n.Name, len(ps))
	}
	return nil
}

func (b *builder) addPods() error {
	for _, n := range b.state.Nodes {
		count := b.topo.Topology.Nodes[n.Name].Pods()
		if has, err := netnsbuild.HasDefaultRoute(n.NS); count > 0 && err == nil && !has {
			b.step("warning: %s has no default route; its pods cannot ARP for 169.254.1.1 (add one with exec)", n.Name)
		}
		for i := 1; i <= count; i++ {
			pod := fmt.Sprintf("%s-pod%d", n.Name, i)
			ns := NSName(b.state.Name, pod)
			if err := netnsbuild.Create(ns); err != nil {
				return err
			}
			b.state.Pods = append(b.state.Pods, PodState{Name: "default/" + pod, Node: n.Name, NS: ns})
			if err := b.save(); err != nil {
				return err
			}
			out, err := b.petrelCmd(n.NS, []string{"NODENAME=" + n.Name}, "workload", "add", "--name", "default/"+pod, "--netns", ns)
			if err != nil {
				return fmt.Errorf("pod %s: %w", pod, err)
			}
			b.state.Pods[len(b.state.Pods)-1].Addr = strings.TrimSpace(out)
			b.step("pod default/%s on %s: %s", pod, n.Name, strings.TrimSpace(out))
			if err := b.save(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (b *builder) waitPings() error {
	if len(b.state.Pods) < 2 {
		return nil
	}
	b.step("waiting until every pod reaches every other pod")
	err := poll(60*time.Second, 500*time.Millisecond, func() error {
		var failed []string
		for _, c := range PingMatrix(b.state.Pods, 1) {
			if c.Loss != 0 {
				failed = append(failed, c.From+"->"+c.To)
			}
		}
		if len(failed) > 0 {
			sort.Strings(failed)
			if len(failed) > 6 {
				failed = append(failed[:6], fmt.Sprintf("and %d more", len(failed)-6))
			}
			return fmt.Errorf("no answer: %s", strings.Join(failed, ", "))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pod connectivity: %w", err)
	}
	return nil
}

// PingResult is one cell of the ping matrix.
type PingResult struct {
	From, To string
	Loss     int // percent; 100 when ping could not run
}

// PingMatrix pings every pod from every other pod (count echoes each, all
// pairs in parallel) and returns the loss per pair.
func PingMatrix(pods []PodState, count int) []PingResult {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var res []PingResult
	for _, from := range pods {
		for _, to := range pods {
			if from.Name == to.Name || to.Addr == "" {
				continue
			}
			wg.Go(func() {
				loss := 100
				out, _ := inNS(from.NS, "ping", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", "-q", to.Addr)
				if i := strings.Index(out, "% packet loss"); i > 0 {
					j := strings.LastIndexAny(out[:i], " ,") + 1
					if v, err := strconv.ParseFloat(out[j:i], 64); err == nil {
						loss = int(v + 0.5)
					}
				}
				mu.Lock()
				res = append(res, PingResult{From: from.Name, To: to.Name, Loss: loss})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return res
}

// Load reads a lab's state.json.
func Load(name string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(Dir(name), "state.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no lab %s (nothing in %s)", name, Dir(name))
		}
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(Dir(name), "state.json"), err)
	}
	return &s, nil
}

// Labs lists the labs present on this machine: state directories and
// namespaces with the lab prefix.
func Labs() []string {
	seen := map[string]bool{}
	entries, _ := os.ReadDir(StateRoot)
	for _, e := range entries {
		if e.IsDir() && labNameRE.MatchString(e.Name()) {
			seen[e.Name()] = true
		}
	}
	nss, _ := netnsbuild.List()
	for _, ns := range nss {
		if rest, ok := strings.CutPrefix(ns, NSPrefix); ok {
			if name, _, ok := strings.Cut(rest, "-"); ok && labNameRE.MatchString(name) {
				seen[name] = true
			}
		}
	}
	for _, pname := range markedPids("") {
		if labNameRE.MatchString(pname) {
			seen[pname] = true
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ResolveName turns a lab name or a topology file into a lab name.
func ResolveName(arg string) (string, error) {
	if strings.HasSuffix(arg, ".yml") || strings.HasSuffix(arg, ".yaml") {
		t, err := LoadTopology(arg)
		if err != nil {
			return "", err
		}
		return t.Name, nil
	}
	if !labNameRE.MatchString(arg) {
		return "", fmt.Errorf("%q is neither a lab name nor a .clab.yml file", arg)
	}
	return arg, nil
}

// Down removes everything of lab name: its processes (by pid file and by
// the PETREL_LAB marker in their environment), every namespace named
// "plab-<name>-*" (killing whatever still runs in it; their veths and
// bridges go with them) and its state directory. It works from what is
// there, not from state.json, so it also cleans up after a crashed up.
func Down(name string, out io.Writer) error {
	if !labNameRE.MatchString(name) {
		return fmt.Errorf("invalid lab name %q", name)
	}
	if os.Geteuid() != 0 {
		return errors.New("petrel lab needs root (network namespaces)")
	}
	if out == nil {
		out = io.Discard
	}
	dir := Dir(name)
	marked := markedPids(name)
	pidSet := map[int]bool{}
	files, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && marked[pid] != "" {
			pidSet[pid] = true // only if it still carries our marker: pids get reused
		}
	}
	for pid := range marked {
		pidSet[pid] = true
	}
	var pids []int
	for pid := range pidSet {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	var errs []error
	if len(pids) > 0 {
		fmt.Fprintf(out, "[%s] stopping %d processes\n", name, len(pids))
		killAll(pids, 5*time.Second)
	}
	nss, err := netnsbuild.List()
	if err != nil {
		errs = append(errs, err)
	}
	var mine []string
	for _, ns := range nss {
		if strings.HasPrefix(ns, NSPrefix+name+"-") {
			mine = append(mine, ns)
		}
	}
	if len(mine) > 0 {
		fmt.Fprintf(out, "[%s] deleting %d namespaces\n", name, len(mine))
	}
	for _, ns := range mine {
		if err := netnsbuild.Delete(ns); err != nil {
			errs = append(errs, err)
		}
	}
	// Anything marked that escaped (started while we were deleting).
	var rest []int
	for pid := range markedPids(name) {
		rest = append(rest, pid)
	}
	killAll(rest, time.Second)
	if _, err := os.Stat(dir); err == nil {
		fmt.Fprintf(out, "[%s] removing %s\n", name, dir)
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	if len(pids) == 0 && len(mine) == 0 && len(errs) == 0 {
		fmt.Fprintf(out, "[%s] gone\n", name)
	}
	return errors.Join(errs...)
}

// RestartOptions says how Restart stops and starts petrel daemons.
type RestartOptions struct {
	Kill   bool // SIGKILL instead of SIGTERM: no graceful shutdown
	NoWait bool // return once the daemons answer, without waiting for sessions
}

// Restart stops the petrel daemons of the named nodes of lab name (all
// of them at once: every signal is sent before any daemon starts again;
// an empty list means every petrel node) and starts them again as up
// did: same environment, same socket, output appended to the same log,
// detached. It returns once the new daemons answer on their sockets and,
// unless opts.NoWait, every petrel node of the lab has all its sessions
// Established again.
func Restart(ctx context.Context, name string, nodes []string, opts RestartOptions, out io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("petrel lab needs root (network namespaces)")
	}
	if out == nil {
		out = io.Discard
	}
	st, err := Load(name)
	if err != nil {
		return err
	}
	topo, err := LoadTopology(filepath.Join(Dir(name), "topology.clab.yml"))
	if err != nil {
		return err
	}
	b := &builder{opts: Options{Petrel: st.Petrel, Out: out}, topo: topo, dir: Dir(name), state: *st}
	if b.opts.Petrel == "" {
		if b.opts.Petrel, err = os.Executable(); err != nil {
			return err
		}
	}
	targets, err := b.petrelNodes(nodes)
	if err != nil {
		return err
	}
	sig, signame := syscall.SIGTERM, "SIGTERM"
	if opts.Kill {
		sig, signame = syscall.SIGKILL, "SIGKILL"
	}
	var stopped []int
	for _, n := range targets {
		pid, ok := pidFile(name, n.Name+"-petrel")
		if !ok || !alive(pid) || markedPids(name)[pid] == "" {
			b.step("%s: petrel is not running; starting it", n.Name)
			continue
		}
		b.step("%s: sending %s to petrel (pid %d)", n.Name, signame, pid)
		if err := syscall.Kill(pid, sig); err != nil {
			return fmt.Errorf("%s: kill %d: %w", n.Name, pid, err)
		}
		stopped = append(stopped, pid)
	}
	if err := poll(15*time.Second, 20*time.Millisecond, func() error {
		for _, pid := range stopped {
			if alive(pid) {
				return fmt.Errorf("petrel (pid %d) still runs 15s after %s", pid, signame)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, n := range targets {
		if err := b.startPetrel(n); err != nil {
			return err
		}
	}
	started := time.Now()
	if !opts.NoWait {
		if err := b.waitSessions(ctx); err != nil {
			return err
		}
		b.step("every session Established %v after the daemons started", time.Since(started).Round(time.Millisecond))
	}
	for _, n := range targets {
		b.step("%s: petrel restarted", n.Name)
	}
	return nil
}

// petrelNodes resolves node names to the lab's petrel nodes (every one
// when names is empty), refusing a name that is not one.
func (b *builder) petrelNodes(names []string) ([]*NodeState, error) {
	byName := map[string]*NodeState{}
	var all []*NodeState
	var known []string
	for i := range b.state.Nodes {
		if n := &b.state.Nodes[i]; n.Role == "node" {
			byName[n.Name] = n
			all = append(all, n)
			known = append(known, n.Name)
		}
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []*NodeState
	for _, name := range names {
		n := byName[name]
		if n == nil {
			return nil, fmt.Errorf("lab %s has no petrel node %q (petrel nodes: %s)", b.state.Name, name, strings.Join(known, ", "))
		}
		out = append(out, n)
	}
	return out, nil
}
