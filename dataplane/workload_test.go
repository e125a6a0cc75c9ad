package dataplane

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func TestWorkloadHostVethName(t *testing.T) {
	// The rule, spelled out: "cali" + first 11 hex chars of
	// sha1("<namespace>.<pod>").
	sum := sha1.Sum([]byte("default.nginx-deployment-7cf7d6dbc8-h9vpk"))
	rule := "cali" + hex.EncodeToString(sum[:])[:11]

	for _, tc := range []struct {
		namespace, pod, want string
	}{
		// sha1 = ca0aaf26c6548381e5a38a27fe17d43a93485361
		{"default", "nginx-deployment-7cf7d6dbc8-h9vpk", "calica0aaf26c65"},
		// sha1 = 69191835735dbe9f50052e75c4a3b6d48f69bead
		{"kube-system", "coredns-xyz", "cali69191835735"},
	} {
		got := HostVethName(tc.namespace, tc.pod)
		if got != tc.want {
			t.Errorf("HostVethName(%q, %q) = %q, want %q", tc.namespace, tc.pod, got, tc.want)
		}
		if len(got) != 15 {
			t.Errorf("HostVethName(%q, %q) = %q: %d characters, want 15 (IFNAMSIZ-1)", tc.namespace, tc.pod, got, len(got))
		}
	}
	if got := HostVethName("default", "nginx-deployment-7cf7d6dbc8-h9vpk"); got != rule {
		t.Errorf("HostVethName = %q, rule gives %q", got, rule)
	}
}

func TestWorkloadNormalize(t *testing.T) {
	ok := Workload{Namespace: "ns", Pod: "p", NetNS: "/var/run/netns/x", IPv4: netip.MustParseAddr("198.18.0.2")}
	w, err := ok.normalized()
	if err != nil {
		t.Fatalf("normalized(%+v): %v", ok, err)
	}
	if w.MTU != 1500 || w.RouteProtocol != 3 {
		t.Errorf("defaults: MTU %d, protocol %d; want 1500, 3", w.MTU, w.RouteProtocol)
	}
	for name, mod := range map[string]func(*Workload){
		"no namespace":   func(w *Workload) { w.Namespace = "" },
		"no pod":         func(w *Workload) { w.Pod = "" },
		"no netns":       func(w *Workload) { w.NetNS = "" },
		"no address":     func(w *Workload) { w.IPv4 = netip.Addr{} },
		"v6 in IPv4":     func(w *Workload) { w.IPv4 = netip.MustParseAddr("2001:db8::1") },
		"v4 in IPv6":     func(w *Workload) { w.IPv6 = netip.MustParseAddr("198.18.0.9") },
		"link-local v6":  func(w *Workload) { w.IPv6 = netip.MustParseAddr("fe80::1") },
		"unspecified":    func(w *Workload) { w.IPv4 = netip.MustParseAddr("0.0.0.0") },
		"tiny MTU":       func(w *Workload) { w.MTU = 10 },
		"huge MTU":       func(w *Workload) { w.MTU = 70000 },
		"protocol > 255": func(w *Workload) { w.RouteProtocol = 256 },
	} {
		bad := ok
		mod(&bad)
		if _, err := bad.normalized(); err == nil {
			t.Errorf("%s: normalized(%+v) succeeded, want an error", name, bad)
		}
	}
}

// --- root tests: everything happens in namespaces the test creates ---

var workloadNSCounter atomic.Int64

func workloadNeedRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: workload plumbing tests need root (they create network namespaces and veths); run as root: go test ./dataplane/ -run Workload")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: iproute2's ip is not installed")
	}
}

func workloadRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// workloadNS creates a network namespace pdp-<pid>-<n>, removed at cleanup,
// and returns its name and path.
func workloadNS(t *testing.T) (string, string) {
	t.Helper()
	name := fmt.Sprintf("pdp-%d-%d", os.Getpid(), workloadNSCounter.Add(1))
	workloadRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	return name, "/var/run/netns/" + name
}

func workloadNSRun(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return workloadRun(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// workloadLab is a "host" namespace laid out like a node (lo up, forwarding
// on, an uplink with a default route, which is what proxy ARP answers
// from) and a Plumber bound to it.
type workloadLab struct {
	t        *testing.T
	host     string // netns name
	hostPath string
	p        *Plumber
}

func newWorkloadLab(t *testing.T) *workloadLab {
	t.Helper()
	workloadNeedRoot(t)
	host, hostPath := workloadNS(t)
	workloadNSRun(t, host, "ip", "link", "set", "lo", "up")
	workloadNSRun(t, host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	workloadNSRun(t, host, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	workloadNSRun(t, host, "ip", "link", "set", "up0", "up")
	workloadNSRun(t, host, "ip", "link", "set", "up1", "up")
	workloadNSRun(t, host, "ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
	workloadNSRun(t, host, "ip", "route", "add", "default", "via", "192.0.2.254", "dev", "up0")
	p, err := NewPlumber(hostPath)
	if err != nil {
		t.Fatalf("NewPlumber(%s): %v", hostPath, err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &workloadLab{t: t, host: host, hostPath: hostPath, p: p}
}

// pod makes a pod namespace and the Workload for it.
func (l *workloadLab) pod(name, ip string) (string, Workload) {
	l.t.Helper()
	ns, path := workloadNS(l.t)
	return ns, Workload{
		Namespace:     "default",
		Pod:           name,
		NetNS:         path,
		IPv4:          netip.MustParseAddr(ip),
		MTU:           1450,
		RouteProtocol: 80,
	}
}

func (l *workloadLab) add(w Workload) string {
	l.t.Helper()
	name, err := l.p.Add(context.Background(), w)
	if err != nil {
		l.t.Fatalf("Add(%+v): %v", w, err)
	}
	return name
}

type workloadIPAddr struct {
	Ifname    string   `json:"ifname"`
	Flags     []string `json:"flags"`
	MTU       int      `json:"mtu"`
	Operstate string   `json:"operstate"`
	Address   string   `json:"address"`
	AddrInfo  []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		Prefixlen int    `json:"prefixlen"`
		Scope     string `json:"scope"`
		Nodad     bool   `json:"nodad"`
	} `json:"addr_info"`
}

func workloadAddrs(t *testing.T, ns string, args ...string) map[string]workloadIPAddr {
	t.Helper()
	var links []workloadIPAddr
	out := workloadNSRun(t, ns, append([]string{"ip", "-j"}, append(args, "addr", "show")...)...)
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j addr in %s: %v\n%s", ns, err, out)
	}
	m := map[string]workloadIPAddr{}
	for _, l := range links {
		m[l.Ifname] = l
	}
	return m
}

// workloadRoutes renders `ip -j route` output as `ip route` lines, sorted.
func workloadRoutes(t *testing.T, ns string, args ...string) []string {
	t.Helper()
	var routes []struct {
		Type     string   `json:"type"`
		Dst      string   `json:"dst"`
		Gateway  string   `json:"gateway"`
		Dev      string   `json:"dev"`
		Protocol string   `json:"protocol"`
		Scope    string   `json:"scope"`
		Flags    []string `json:"flags"`
	}
	out := workloadNSRun(t, ns, append([]string{"ip", "-j"}, append(args, "route", "show")...)...)
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		t.Fatalf("ip -j route in %s: %v\n%s", ns, err, out)
	}
	var lines []string
	for _, r := range routes {
		s := r.Dst
		// -N (numeric protocols, as petrel's are unnamed) also numbers
		// route types and scopes; name those that occur here.
		if r.Type == "6" {
			r.Type = "blackhole"
		}
		if r.Type != "" {
			s = r.Type + " " + s
		}
		switch r.Scope {
		case "253":
			r.Scope = "link"
		case "254":
			r.Scope = "host"
		}
		if r.Gateway != "" {
			s += " via " + r.Gateway
		}
		if r.Dev != "" {
			s += " dev " + r.Dev
		}
		if r.Protocol != "" {
			s += " proto " + r.Protocol
		}
		if r.Scope != "" {
			s += " scope " + r.Scope
		}
		for _, f := range r.Flags {
			s += " " + f
		}
		lines = append(lines, s)
	}
	slices.Sort(lines)
	return lines
}

func workloadSysctl(t *testing.T, ns, key string) string {
	t.Helper()
	return strings.TrimSpace(workloadNSRun(t, ns, "cat", "/proc/sys/"+key))
}

func workloadHasLink(t *testing.T, ns, name string) bool {
	t.Helper()
	return exec.Command("ip", "netns", "exec", ns, "ip", "link", "show", "dev", name).Run() == nil
}

// checkPod asserts the pod looks like a Calico pod (the seed's `ip a`, `ip r`).
func (l *workloadLab) checkPod(podNS string, ip string) {
	t := l.t
	t.Helper()
	addrs := workloadAddrs(t, podNS)
	eth0, ok := addrs["eth0"]
	if !ok {
		t.Fatalf("pod %s has no eth0: %+v", podNS, addrs)
	}
	if eth0.MTU != 1450 || !slices.Contains(eth0.Flags, "UP") || eth0.Operstate != "UP" {
		t.Errorf("pod eth0: mtu %d flags %v state %s; want 1450, UP, UP", eth0.MTU, eth0.Flags, eth0.Operstate)
	}
	var v4 []string
	for _, a := range eth0.AddrInfo {
		if a.Family == "inet" {
			v4 = append(v4, fmt.Sprintf("%s/%d scope %s", a.Local, a.Prefixlen, a.Scope))
		}
	}
	if want := []string{ip + "/32 scope global"}; !slices.Equal(v4, want) {
		t.Errorf("pod eth0 IPv4 addresses = %q, want %q", v4, want)
	}
	if lo := addrs["lo"]; !slices.Contains(lo.Flags, "UP") {
		t.Errorf("pod lo is not up: %v", lo.Flags)
	}
	want := []string{"169.254.1.1 dev eth0 scope link", "default via 169.254.1.1 dev eth0"}
	if got := workloadRoutes(t, podNS); !slices.Equal(got, want) {
		t.Errorf("pod routes =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// checkHost asserts the host side: veth MAC, MTU, state, sysctls, route.
func (l *workloadLab) checkHost(ifName, ip string) {
	t := l.t
	t.Helper()
	addrs := workloadAddrs(t, l.host)
	cali, ok := addrs[ifName]
	if !ok {
		t.Fatalf("host has no %s", ifName)
	}
	if cali.Address != "ee:ee:ee:ee:ee:ee" || cali.MTU != 1450 || !slices.Contains(cali.Flags, "UP") {
		t.Errorf("host %s: mac %s mtu %d flags %v; want ee:ee:ee:ee:ee:ee, 1450, UP", ifName, cali.Address, cali.MTU, cali.Flags)
	}
	for key, want := range map[string]string{
		"net/ipv4/conf/" + ifName + "/proxy_arp":      "1",
		"net/ipv4/conf/" + ifName + "/forwarding":     "1",
		"net/ipv4/conf/" + ifName + "/route_localnet": "1",
		"net/ipv4/neigh/" + ifName + "/proxy_delay":   "0",
	} {
		if got := workloadSysctl(t, l.host, key); got != want {
			t.Errorf("host sysctl %s = %s, want %s", key, got, want)
		}
	}
	want := []string{ip + " dev " + ifName + " proto 80 scope link"}
	var mine []string // only the routes via this veth matter here
	for _, r := range workloadRoutes(t, l.host, "-N") {
		if strings.Contains(r, " dev "+ifName+" ") {
			mine = append(mine, r)
		}
	}
	if !slices.Equal(mine, want) {
		t.Errorf("host routes via %s = %q, want %q", ifName, mine, want)
	}
}

func TestWorkloadAdd(t *testing.T) {
	l := newWorkloadLab(t)
	podNS, w := l.pod("nginx-deployment-7cf7d6dbc8-h9vpk", "198.18.0.2")
	ifName := l.add(w)
	if ifName != "calica0aaf26c65" {
		t.Errorf("Add returned %q, want calica0aaf26c65", ifName)
	}
	l.checkPod(podNS, "198.18.0.2")
	l.checkHost(ifName, "198.18.0.2")
	if err := l.p.Check(context.Background(), w); err != nil {
		t.Errorf("Check after Add: %v", err)
	}

	t.Run("arping", func(t *testing.T) {
		if _, err := exec.LookPath("arping"); err != nil {
			t.Skip("skipping: arping not installed (Debian package iputils-arping)")
		}
		out := workloadNSRun(t, podNS, "arping", "-c1", "-w3", "-I", "eth0", "169.254.1.1")
		if !strings.Contains(strings.ToLower(out), "ee:ee:ee:ee:ee:ee") {
			t.Errorf("arping 169.254.1.1 from the pod: no answer from ee:ee:ee:ee:ee:ee:\n%s", out)
		}
	})
}

func TestWorkloadPodToPod(t *testing.T) {
	l := newWorkloadLab(t)
	podA, wa := l.pod("a", "198.18.0.2")
	podB, wb := l.pod("b", "198.18.0.3")
	l.add(wa)
	l.add(wb)
	workloadNSRun(t, podA, "ping", "-c1", "-W3", "198.18.0.3")
	workloadNSRun(t, podB, "ping", "-c1", "-W3", "198.18.0.2")
}

func TestWorkloadAddIdempotent(t *testing.T) {
	l := newWorkloadLab(t)
	podNS, w := l.pod("web", "198.18.0.2")
	ifName := l.add(w)

	snapshot := func() string {
		var b strings.Builder
		for _, ns := range []string{l.host, podNS} {
			b.WriteString(workloadNSRun(t, ns, "ip", "-d", "addr", "show"))
			b.WriteString(workloadNSRun(t, ns, "ip", "-N", "route", "show", "table", "all"))
		}
		b.WriteString(workloadSysctl(t, l.host, "net/ipv4/conf/"+ifName+"/proxy_arp"))
		return b.String()
	}
	before := snapshot()
	if got := l.add(w); got != ifName {
		t.Errorf("second Add returned %q, want %q", got, ifName)
	}
	if after := snapshot(); after != before {
		t.Errorf("second Add changed something:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// A different address: the pod's address and the host route follow.
	w.IPv4 = netip.MustParseAddr("198.18.0.9")
	l.add(w)
	l.checkPod(podNS, "198.18.0.9")
	l.checkHost(ifName, "198.18.0.9")
	if err := l.p.Check(context.Background(), w); err != nil {
		t.Errorf("Check after re-Add with a new IP: %v", err)
	}
}

func TestWorkloadStaleSandbox(t *testing.T) {
	l := newWorkloadLab(t)
	oldNS, w := l.pod("web", "198.18.0.2")
	ifName := l.add(w)
	// The pod's sandbox is recreated in a new netns while the old one
	// still exists: the host veth name is the same, the pair must move.
	newNS, newPath := workloadNS(t)
	w.NetNS = newPath
	if got := l.add(w); got != ifName {
		t.Errorf("Add returned %q, want %q", got, ifName)
	}
	if workloadHasLink(t, oldNS, "eth0") {
		t.Errorf("old sandbox still has eth0")
	}
	l.checkPod(newNS, "198.18.0.2")
	l.checkHost(ifName, "198.18.0.2")
}

func TestWorkloadDel(t *testing.T) {
	l := newWorkloadLab(t)
	podNS, w := l.pod("web", "198.18.0.2")
	// Another owner's route must survive.
	workloadNSRun(t, l.host, "ip", "route", "add", "blackhole", "198.18.1.0/24", "proto", "12")
	ifName := l.add(w)
	ctx := context.Background()
	if err := l.p.Del(ctx, w.Namespace, w.Pod, w.NetNS); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if workloadHasLink(t, l.host, ifName) {
		t.Errorf("host still has %s after Del", ifName)
	}
	if workloadHasLink(t, podNS, "eth0") {
		t.Errorf("pod still has eth0 after Del")
	}
	routes := workloadRoutes(t, l.host, "-N")
	for _, r := range routes {
		if strings.Contains(r, "198.18.0.2") || strings.Contains(r, ifName) {
			t.Errorf("host route left after Del: %s", r)
		}
	}
	if !slices.Contains(routes, "blackhole 198.18.1.0/24 proto 12") {
		t.Errorf("Del removed another owner's route; host routes: %q", routes)
	}
	if err := l.p.Del(ctx, w.Namespace, w.Pod, w.NetNS); err != nil {
		t.Errorf("second Del: %v", err)
	}
	if err := l.p.Del(ctx, w.Namespace, w.Pod, "/var/run/netns/pdp-does-not-exist"); err != nil {
		t.Errorf("Del with a vanished netns: %v", err)
	}
	if err := l.p.Del(ctx, w.Namespace, w.Pod, ""); err != nil {
		t.Errorf("Del without a netns: %v", err)
	}
	if err := l.p.Check(ctx, w); err == nil {
		t.Errorf("Check after Del succeeded, want an error")
	}
}

func TestWorkloadDelRefusesHostNetNS(t *testing.T) {
	l := newWorkloadLab(t)
	// The host's own eth0 must never be taken for a pod's.
	workloadNSRun(t, l.host, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
	if err := l.p.Del(context.Background(), "default", "web", l.hostPath); err != nil {
		t.Fatalf("Del: %v", err)
	}
	if !workloadHasLink(t, l.host, "eth0") {
		t.Errorf("Del with the host netns as pod netns deleted the host's eth0")
	}
	_, err := l.p.Add(context.Background(), Workload{Namespace: "default", Pod: "web", NetNS: l.hostPath, IPv4: netip.MustParseAddr("198.18.0.2")})
	if err == nil {
		t.Errorf("Add with the host netns as pod netns succeeded, want an error")
	}
}

// workloadAssertClean asserts Add left nothing: no cali link and no route
// of its protocol in the host, no eth0 in the pod.
func (l *workloadLab) assertClean(podNS string) {
	t := l.t
	t.Helper()
	for name := range workloadAddrs(t, l.host) {
		if strings.HasPrefix(name, "cali") {
			t.Errorf("host has %s after a failed Add", name)
		}
	}
	for _, r := range workloadRoutes(t, l.host, "-N") {
		if strings.Contains(r, "proto 80") {
			t.Errorf("host has route %q after a failed Add", r)
		}
	}
	if podNS != "" && workloadHasLink(t, podNS, "eth0") {
		t.Errorf("pod has eth0 after a failed Add")
	}
}

func TestWorkloadAddFailureLeavesNothing(t *testing.T) {
	l := newWorkloadLab(t)
	ctx := context.Background()

	t.Run("missing netns", func(t *testing.T) {
		w := Workload{Namespace: "default", Pod: "ghost", NetNS: "/var/run/netns/pdp-does-not-exist", IPv4: netip.MustParseAddr("198.18.0.5"), RouteProtocol: 80}
		if _, err := l.p.Add(ctx, w); err == nil {
			t.Fatalf("Add into a missing netns succeeded")
		}
		l.assertClean("")
	})

	t.Run("pod already has eth0", func(t *testing.T) {
		podNS, w := l.pod("busy", "198.18.0.6")
		workloadNSRun(t, podNS, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other")
		if _, err := l.p.Add(ctx, w); err == nil {
			t.Fatalf("Add into a pod with a foreign eth0 succeeded")
		}
		for name := range workloadAddrs(t, l.host) {
			if strings.HasPrefix(name, "cali") {
				t.Errorf("host has %s after a failed Add", name)
			}
		}
	})

	for _, step := range []string{"veth", "host-link", "pod", "host-routes"} {
		t.Run("fail after "+step, func(t *testing.T) {
			podNS, w := l.pod("fail-"+step, "198.18.0.7")
			l.p.failpoint = func(s string) error {
				if s == step {
					return fmt.Errorf("injected failure after %s", s)
				}
				return nil
			}
			defer func() { l.p.failpoint = nil }()
			if _, err := l.p.Add(ctx, w); err == nil || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("Add = %v, want the injected failure", err)
			}
			l.assertClean(podNS)
		})
	}

	t.Run("re-Add failing keeps the existing pair, drops new routes", func(t *testing.T) {
		podNS, w := l.pod("existing", "198.18.0.8")
		ifName := l.add(w)
		w.IPv4 = netip.MustParseAddr("198.18.0.10")
		l.p.failpoint = func(s string) error {
			if s == "host-routes" {
				return fmt.Errorf("injected failure after %s", s)
			}
			return nil
		}
		defer func() { l.p.failpoint = nil }()
		if _, err := l.p.Add(ctx, w); err == nil {
			t.Fatalf("Add succeeded despite the injected failure")
		}
		if !workloadHasLink(t, l.host, ifName) || !workloadHasLink(t, podNS, "eth0") {
			t.Errorf("failed re-Add removed the pre-existing veth pair")
		}
		for _, r := range workloadRoutes(t, l.host, "-N") {
			if strings.Contains(r, "198.18.0.10") {
				t.Errorf("failed re-Add left its new route %q", r)
			}
		}
		if err := l.p.Del(ctx, w.Namespace, w.Pod, w.NetNS); err != nil {
			t.Fatalf("Del: %v", err)
		}
	})
}

func TestWorkloadCheck(t *testing.T) {
	l := newWorkloadLab(t)
	podNS, w := l.pod("web", "198.18.0.2")
	ifName := l.add(w)
	ctx := context.Background()
	for _, tc := range []struct {
		name, ns string
		breakIt  []string
		wantErr  string
	}{
		{"host route", l.host, []string{"ip", "route", "del", "198.18.0.2/32", "dev", ifName}, "host route missing"},
		{"proxy_arp", l.host, []string{"sysctl", "-qw", "net.ipv4.conf." + ifName + ".proxy_arp=0"}, "proxy_arp"},
		{"pod default route", podNS, []string{"ip", "route", "del", "default"}, "pod route missing"},
		{"pod address", podNS, []string{"ip", "addr", "del", "198.18.0.2/32", "dev", "eth0"}, "lacks address"},
		{"host mac", l.host, []string{"ip", "link", "set", ifName, "address", "02:00:00:00:00:01"}, "MAC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			workloadNSRun(t, tc.ns, tc.breakIt...)
			err := l.p.Check(ctx, w)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Check after breaking %s = %v, want an error mentioning %q", tc.name, err, tc.wantErr)
			}
			l.add(w) // repairs
			if err := l.p.Check(ctx, w); err != nil {
				t.Fatalf("Check after repairing Add: %v", err)
			}
		})
	}
	l.checkPod(podNS, "198.18.0.2")
	l.checkHost(ifName, "198.18.0.2")
}

func TestWorkloadIPv6(t *testing.T) {
	l := newWorkloadLab(t)
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		t.Skip("skipping: no IPv6 in this kernel")
	}
	workloadNSRun(t, l.host, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	podA, wa := l.pod("a", "198.18.0.2")
	wa.IPv6 = netip.MustParseAddr("2001:db8::2")
	podB, wb := l.pod("b", "198.18.0.3")
	wb.IPv6 = netip.MustParseAddr("2001:db8::3")
	ifA := l.add(wa)
	l.add(wb)
	ctx := context.Background()
	if err := l.p.Check(ctx, wa); err != nil {
		t.Errorf("Check: %v", err)
	}
	l.checkPod(podA, "198.18.0.2")

	eth0 := workloadAddrs(t, podA)["eth0"]
	var v6 []string
	for _, a := range eth0.AddrInfo {
		if a.Family == "inet6" && a.Scope == "global" {
			v6 = append(v6, fmt.Sprintf("%s/%d nodad=%v", a.Local, a.Prefixlen, a.Nodad))
		}
	}
	if want := []string{"2001:db8::2/128 nodad=true"}; !slices.Equal(v6, want) {
		t.Errorf("pod eth0 global IPv6 = %q, want %q", v6, want)
	}
	var defaults []string
	for _, r := range workloadRoutes(t, podA, "-6") {
		if strings.HasPrefix(r, "default") {
			defaults = append(defaults, r)
		}
	}
	if want := []string{"default via fe80::ecee:eeff:feee:eeee dev eth0 proto boot"}; !slices.Equal(defaults, want) && !slices.Equal(defaults, []string{"default via fe80::ecee:eeff:feee:eeee dev eth0"}) {
		t.Errorf("pod IPv6 default routes = %q, want %q", defaults, want)
	}
	for key, want := range map[string]string{
		"net/ipv6/conf/" + ifA + "/proxy_ndp":  "1",
		"net/ipv6/conf/" + ifA + "/accept_dad": "0",
		"net/ipv6/conf/" + ifA + "/accept_ra":  "0",
		"net/ipv6/conf/" + ifA + "/forwarding": "1",
	} {
		if got := workloadSysctl(t, l.host, key); got != want {
			t.Errorf("host sysctl %s = %s, want %s", key, got, want)
		}
	}
	var hostV6 []string
	for _, r := range workloadRoutes(t, l.host, "-6", "-N") {
		if strings.Contains(r, "dev "+ifA) && strings.Contains(r, "proto 80") {
			hostV6 = append(hostV6, r)
		}
	}
	if want := []string{"2001:db8::2 dev " + ifA + " proto 80"}; !slices.Equal(hostV6, want) {
		t.Errorf("host IPv6 routes via %s = %q, want %q", ifA, hostV6, want)
	}
	workloadNSRun(t, podA, "ping", "-6", "-c1", "-W3", "2001:db8::3")
	workloadNSRun(t, podB, "ping", "-6", "-c1", "-W3", "2001:db8::2")

	// Dropping IPv6 from the workload removes its address and routes.
	wa.IPv6 = netip.Addr{}
	l.add(wa)
	if err := l.p.Check(ctx, wa); err != nil {
		t.Errorf("Check after dropping IPv6: %v", err)
	}
	for _, r := range workloadRoutes(t, l.host, "-6", "-N") {
		if strings.Contains(r, "2001:db8::2") {
			t.Errorf("host IPv6 route left after dropping IPv6: %s", r)
		}
	}
}
