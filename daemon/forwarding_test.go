package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/config"
)

// sysctlTree makes a fake /proc/sys with both forwarding switches at 0.
func sysctlTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		path := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func readSysctl(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestEnableForwarding(t *testing.T) {
	tests := []struct {
		fwd        config.Forwarding
		ipv4, ipv6 string
	}{
		{config.Forwarding{IPv4: true}, "1", "0"},
		{config.Forwarding{IPv4: true, IPv6: true}, "1", "1"},
		{config.Forwarding{}, "0", "0"},
	}
	for _, tt := range tests {
		root := sysctlTree(t)
		if err := enableForwarding(root, tt.fwd, slog.Default()); err != nil {
			t.Fatalf("%+v: %v", tt.fwd, err)
		}
		if got := readSysctl(t, root, "net/ipv4/ip_forward"); got != tt.ipv4 {
			t.Errorf("%+v: ip_forward = %s, want %s", tt.fwd, got, tt.ipv4)
		}
		if got := readSysctl(t, root, "net/ipv6/conf/all/forwarding"); got != tt.ipv6 {
			t.Errorf("%+v: ipv6 forwarding = %s, want %s", tt.fwd, got, tt.ipv6)
		}
	}
}

func TestEnableForwardingNamesTheSettingOnError(t *testing.T) {
	err := enableForwarding(t.TempDir(), config.Forwarding{IPv4: true}, slog.Default())
	if err == nil || !strings.Contains(err.Error(), "ip_forward") || !strings.Contains(err.Error(), "ip-forwarding=Disabled") {
		t.Fatalf("err = %v, want one naming net/ipv4/ip_forward and the ip-forwarding setting", err)
	}
}

func TestIPv6ForwardingAutoWaitsForIPv6(t *testing.T) {
	root := sysctlTree(t)
	r := &forwardingReconciler{root: root, log: slog.Default()}
	v4only := &desired{Peers: []bgp.PeerConfig{{Address: netip.MustParseAddr("10.0.0.2")}}, Originated: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/26")}}
	if err := r.Reconcile(context.Background(), v4only); err != nil {
		t.Fatal(err)
	}
	if got := readSysctl(t, root, ipv6ForwardingSysctl); got != "0" {
		t.Fatalf("IPv4-only node: ipv6 forwarding = %s, want 0", got)
	}
	for _, d := range []*desired{
		{Peers: []bgp.PeerConfig{{Address: netip.MustParseAddr("fd00::2")}}},
		{Originated: []netip.Prefix{netip.MustParsePrefix("fd00:100::/122")}},
	} {
		root := sysctlTree(t)
		r := &forwardingReconciler{root: root, log: slog.Default()}
		if err := r.Reconcile(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		if got := readSysctl(t, root, ipv6ForwardingSysctl); got != "1" {
			t.Errorf("%+v: ipv6 forwarding = %s, want 1", d, got)
		}
	}
	if err := (&forwardingReconciler{root: t.TempDir(), log: slog.Default()}).Reconcile(context.Background(), &desired{Originated: []netip.Prefix{netip.MustParsePrefix("fd00:100::/122")}}); err == nil || !strings.Contains(err.Error(), "ipv6-forwarding=Disabled") {
		t.Errorf("unwritable sysctl: err = %v, want one naming the ipv6-forwarding setting", err)
	}
}
