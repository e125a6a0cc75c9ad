package bench

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The helpers' pure parts, checked without root.

func TestGenPrefixes(t *testing.T) {
	for _, c := range []struct {
		fam                 ingestFamily
		first, second, last string
	}{
		{ingestIPv4, "10.0.0.0/26", "10.0.0.64/26", "10.97.167.192/26"},
		{ingestIPv6, "fd00:1000::/122", "fd00:1000::40/122", "fd00:1000::61:a7c0/122"},
	} {
		ps, err := genPrefixes(c.fam.base, c.fam.shape.Bits, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		if ps[0].String() != c.first || ps[1].String() != c.second || ps[len(ps)-1].String() != c.last {
			t.Errorf("got %v %v .. %v", ps[0], ps[1], ps[len(ps)-1])
		}
		if overlapsAny(ps, c.fam.link) {
			t.Errorf("overlaps %v", c.fam.link)
		}
	}
	for base, bits := range map[string]int{"10.0.0.0/24": 26, "fd00::/120": 122} {
		if _, err := genPrefixes(netip.MustParsePrefix(base), bits, 5); err == nil {
			t.Errorf("5 /%ds fit in %s?", bits, base)
		}
	}
	// A carry from the low 64 bits into the high ones.
	if got := addrPlus(netip.MustParseAddr("fd00::ffff:ffff:ffff:ffc0"), 64); got != netip.MustParseAddr("fd00:0:0:1::") {
		t.Errorf("addrPlus carried to %v", got)
	}
}

func TestBirdRouteCount(t *testing.T) {
	ipv4Only := "100000 of 100000 routes for 100000 networks in table master4\n"
	ipv6Only := "0 of 0 routes for 0 networks in table master4\n" +
		"5 of 5 routes for 5 networks in table master6\n" +
		"Total: 5 of 5 routes for 5 networks in 2 tables\n"
	for out, want := range map[string]int{ipv4Only: 100000, ipv6Only: 5} {
		if n, err := birdRouteCount(out); err != nil || n != want {
			t.Errorf("birdRouteCount(%q) = %d, %v; want %d", out, n, err, want)
		}
	}
	if _, err := birdRouteCount("BIRD is shutting down\n"); err == nil {
		t.Error("no count in the output, no error")
	}
}

func TestCaliNames(t *testing.T) {
	seen := map[string]bool{}
	for i := range idleVeths {
		n := caliName(i)
		if len(n) != 15 || !strings.HasPrefix(n, "cali") || seen[n] {
			t.Fatalf("caliName(%d) = %q (len %d, dup %v)", i, n, len(n), seen[n])
		}
		seen[n] = true
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3}
	if p := percentile(ds, 50); p != 3 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(ds, 100); p != 5 {
		t.Errorf("max = %v", p)
	}
}

func TestBirdConfigs(t *testing.T) {
	tor := torBirdConfig("10.200.0.1", []string{"10.200.0.2"}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/26")})
	for _, want := range []string{"route 10.0.0.0/26 blackhole;", "passive on;", "neighbor 10.200.0.2 as 64512;"} {
		if !strings.Contains(tor, want) {
			t.Errorf("tor config lacks %q:\n%s", want, tor)
		}
	}
	tor6 := torBirdConfig("10.200.0.1", []string{"fd00:200::2"}, []netip.Prefix{netip.MustParsePrefix("fd00:1000::/122")})
	node6 := birdNodeConfig(nodeSpec{RouterID: "10.200.0.2", Peers: []string{"fd00:200::1"}})
	if strings.Contains(tor6+node6, "ipv4") || !strings.Contains(tor6, "  ipv6;\n  route fd00:1000::/122 blackhole;") || strings.Count(node6, "ipv6") != 3 {
		t.Errorf("IPv6 configs have other channels than ipv6:\n%s\n%s", tor6, node6)
	}
	node := birdNodeConfig(nodeSpec{RouterID: "10.0.0.1", Peers: []string{"10.0.0.2"}, Export: []netip.Prefix{propagationExport}, LearnKernel: true})
	for _, want := range []string{"learn; persist; scan time 2;", "import all; export all;", "[ 10.77.0.0/16+ ]", "gateway recursive", `interface -"cali*"`} {
		if !strings.Contains(node, want) {
			t.Errorf("node config lacks %q:\n%s", want, node)
		}
	}
	if p := petrelConfig("a", nodeSpec{RouterID: "10.0.0.1", Peers: []string{"10.0.0.2"}}); strings.Contains(p, "export") {
		t.Errorf("plain petrel config mentions export:\n%s", p)
	}
}

func TestReflectorBirdConfig(t *testing.T) {
	conf := birdNodeConfig(nodeSpec{RouterID: "10.0.0.1", Peers: []string{"10.0.0.2", "10.0.0.3"}, ClusterID: "224.0.0.1"})
	if n := strings.Count(conf, "rr client;\n  rr cluster id 224.0.0.1;"); n != 2 {
		t.Errorf("%d peers are rr clients, want 2:\n%s", n, conf)
	}
	if strings.Contains(conf, "next hop self") {
		t.Errorf("a reflector must keep its clients' next hops:\n%s", conf)
	}
}

func TestFRRNodeConfig(t *testing.T) {
	for _, tc := range []struct {
		name        string
		spec        nodeSpec
		want, avoid []string
	}{
		{"plain", nodeSpec{RouterID: "10.0.0.1", Peers: []string{"10.0.0.2"}},
			[]string{"router bgp 64512", "bgp router-id 10.0.0.1", "neighbor 10.0.0.2 peer-group peers", "neighbor peers next-hop-self", "bgp graceful-restart"},
			[]string{"redistribute", "route-reflector-client", "cluster-id"}},
		{"export", nodeSpec{RouterID: "10.0.0.1", Peers: []string{"10.0.0.2"}, Export: []netip.Prefix{propagationExport}},
			[]string{"ip prefix-list bench_export seq 5 permit 10.77.0.0/16 le 32", "redistribute kernel route-map bench_export"}, nil},
		{"reflector", nodeSpec{RouterID: "10.0.0.1", Peers: []string{"10.0.0.2"}, ClusterID: "224.0.0.1"},
			[]string{"bgp cluster-id 224.0.0.1", "neighbor peers route-reflector-client"},
			[]string{"next-hop-self"}},
	} {
		conf := frrNodeConfig("node", tc.spec)
		for _, w := range tc.want {
			if !strings.Contains(conf, w) {
				t.Errorf("%s: config lacks %q:\n%s", tc.name, w, conf)
			}
		}
		for _, a := range tc.avoid {
			if strings.Contains(conf, a) {
				t.Errorf("%s: config has %q:\n%s", tc.name, a, conf)
			}
		}
		checkFRRSyntax(t, conf)
	}
}

// checkFRRSyntax has vtysh parse conf when FRR is installed.
func checkFRRSyntax(t *testing.T, conf string) {
	t.Helper()
	if _, err := exec.LookPath("vtysh"); err != nil {
		return
	}
	path := filepath.Join(t.TempDir(), "frr.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("vtysh", "--dryrun", "--inputfile", path).CombinedOutput(); err != nil {
		t.Errorf("vtysh --dryrun: %v\n%s\nconfig:\n%s", err, out, conf)
	}
}

func TestFormatTable(t *testing.T) {
	results := map[string]result{
		"bird":   {{"ingest", "s", 2, false}, {"setup", "s", 1, true}},
		"petrel": {{"ingest", "s", 3, false}, {"setup", "s", 4, true}},
	}
	table := formatTable("t", allContenders, results)
	for _, want := range []string{"frr/bird", "petrel/bird", "1.50"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for line := range strings.SplitSeq(table, "\n") {
		if strings.HasPrefix(line, "setup") && !strings.HasSuffix(line, " -") {
			t.Errorf("lab figures must not be compared: %q", line)
		}
	}
}
