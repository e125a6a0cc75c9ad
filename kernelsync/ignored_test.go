package kernelsync

import (
	"net/netip"
	"testing"
)

// ignoredInterfaces go in front of the configured list, so they win over
// its "*" but a configured exclusion still holds; wildcards work; with
// none the list is the configured one.
func TestIgnoredInterfacePatterns(t *testing.T) {
	d := newDevices(ignoredPatterns([]string{"eth2", "ens*", ""}, DefaultInterfaces), nil)
	for name, want := range map[string]bool{"eth0": true, "eth2": false, "ens3": false, "cali1234567890a": false, "tunl0": false} {
		if got := d.matchInterface(name); got != want {
			t.Errorf("matchInterface(%q) = %v, want %v", name, got, want)
		}
	}
	d.setLink(2, linkState{name: "eth0", up: true}, false)
	d.setLink(3, linkState{name: "eth2", up: true}, false)
	d.setAddr(2, netip.MustParsePrefix("10.0.0.5/24"), true)
	d.setAddr(3, netip.MustParsePrefix("10.77.0.1/24"), true)
	if got := d.directPrefixes(); len(got) != 1 || !got[netip.MustParsePrefix("10.0.0.0/24")] {
		t.Errorf("direct = %v, want eth0's prefix only (eth2 ignored)", got)
	}
	if got := ignoredPatterns(nil, DefaultInterfaces); len(got) != len(DefaultInterfaces) {
		t.Errorf("no ignored interfaces: %v, want the configured list", got)
	}
}
