package daemon

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/bgp"
)

func TestBGPReadinessFollowsCalicoBirdReady(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	up, down := bgp.StateEstablished, bgp.StateActive
	for _, tt := range []struct {
		name       string
		states     map[netip.Addr]bgp.SessionState
		since      time.Duration
		restarting bool
		ready      bool
		reason     string
	}{
		{"no peers", nil, time.Second, false, true, "no BGP peers configured"},
		{"all up at start", map[netip.Addr]bgp.SessionState{a: up, b: up}, time.Second, false, true, "2 of 2 peers Established"},
		{"one down at start", map[netip.Addr]bgp.SessionState{a: up, b: down}, time.Second, false, false, "starting: 1 of 2 peers Established (10.0.0.2 is Active)"},
		{"graceful restart at start", map[netip.Addr]bgp.SessionState{a: up}, time.Second, true, false, "graceful restart not finished"},
		{"one down after 30 s", map[netip.Addr]bgp.SessionState{a: up, b: down}, time.Minute, false, true, "1 of 2 peers Established"},
		{"all down after 30 s", map[netip.Addr]bgp.SessionState{a: down, b: down}, time.Minute, false, false, "no BGP session Established (10.0.0.1 is Active)"},
	} {
		ready, reason := bgpReadiness(tt.states, tt.since, tt.restarting)
		if ready != tt.ready || !strings.Contains(reason, tt.reason) {
			t.Errorf("%s: ready=%v %q, want %v %q", tt.name, ready, reason, tt.ready, tt.reason)
		}
	}
}
