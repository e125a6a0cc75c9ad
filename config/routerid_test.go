package config

import (
	"crypto/sha256"
	"net/netip"
	"strings"
	"testing"
)

func TestRouterID(t *testing.T) {
	node4 := netip.MustParseAddr("10.0.0.5")
	for _, tc := range []struct {
		setting  string
		fallback netip.Addr
		want     string
		err      string
	}{
		{"", node4, "10.0.0.5", ""},
		{"10.9.9.9", node4, "10.9.9.9", ""},
		{"", netip.Addr{}, "", "has no IPv4 address"},
		{"fd00::1", node4, "", `"fd00::1" is neither an IPv4 address nor "hash"`},
	} {
		got, err := RouterID(tc.setting, "node-a", tc.fallback)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("RouterID(%q) error %v, want %q", tc.setting, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("RouterID(%q) = %s, %v; want %s", tc.setting, got, err, tc.want)
		}
	}
	// hash: stable, the name's SHA-256 prefix, never multicast or reserved.
	for _, name := range []string{"node-a", "node-b", "worker-17", "x"} {
		id, err := RouterID("hash", name, netip.Addr{})
		sum := sha256.Sum256([]byte(name))
		if err != nil || id != HashRouterID(name) || id.As4()[1] != sum[1] || id.As4()[3] != sum[3] || id.As4()[0] > 223 {
			t.Errorf("hash router ID of %s = %s, %v", name, id, err)
		}
	}
	// A name whose hash starts above 223 is moved down by 32.
	for i := 0; i < 1000; i++ {
		name := "n" + strings.Repeat("x", i)
		if sum := sha256.Sum256([]byte(name)); sum[0] > 223 {
			if got := HashRouterID(name).As4()[0]; got != sum[0]-32 {
				t.Errorf("%s: first octet %d, want %d", name, got, sum[0]-32)
			}
			return
		}
	}
	t.Fatal("no name with a hash above 223 found")
}
