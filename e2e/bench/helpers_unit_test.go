package bench

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The helpers' pure parts, checked without root.

func TestGenPrefixes(t *testing.T) {
	ps, err := genPrefixes(netip.MustParsePrefix("10.0.0.0/9"), 26, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].String() != "10.0.0.0/26" || ps[1].String() != "10.0.0.64/26" || ps[len(ps)-1].String() != "10.97.167.192/26" {
		t.Errorf("got %v %v .. %v", ps[0], ps[1], ps[len(ps)-1])
	}
	if overlapsAny(ps, ingestLink) {
		t.Errorf("overlaps %v", ingestLink)
	}
	if _, err := genPrefixes(netip.MustParsePrefix("10.0.0.0/24"), 26, 5); err == nil {
		t.Error("5 /26s fit in a /24?")
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
