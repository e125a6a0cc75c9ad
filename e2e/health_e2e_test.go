package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestHealthAndMetrics: the readiness probe follows Calico's -bird-ready
// rules and the metrics endpoint reports sessions and routes.
func TestHealthAndMetrics(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	a, b := lab.Node("a"), lab.Node("b")
	lab.Link(a, "eth1", "10.0.10.1/24", b, "eth1", "10.0.10.2/24")
	pa := startPetrel(t, lab, a, petrelConfig("a", "10.0.10.1", 64512, []peerSpec{{Address: "10.0.10.2", AS: 64512, Extra: "passive: true"}}, "192.168.10.0/26"))

	// Alone: the peer is down during the first 30 s, so not ready, with why.
	out, err := a.Run(petrelBin, "health", "--bgp-ready", "--socket", pa.socket)
	if err == nil || !strings.Contains(out, "bgp not ready (starting: 0 of 1 peers Established (10.0.10.2 is") {
		t.Errorf("health with the peer down: %v\n%s", err, out)
	}
	if out, err := a.Run(petrelBin, "health", "--live", "--socket", pa.socket); err != nil || !strings.Contains(out, "live live (alive)") {
		t.Errorf("liveness: %v\n%s", err, out)
	}

	pb := startPetrel(t, lab, b, petrelConfig("b", "10.0.10.2", 64512, []peerSpec{{Address: "10.0.10.1", AS: 64512}}, "192.168.11.0/26"))
	established(t, "a", pa.PeerState, "10.0.10.2")
	hasRoute(t, "b", pb.Routes, "192.168.10.0/26", "10.0.10.1")
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		out, err := b.Run(petrelBin, "health", "--bgp-ready", "--kernel-ready", "--live", "--socket", pb.socket)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "bgp ready (1 of 1 peers Established)") || !strings.Contains(out, "kernel ready") {
			return errorString(out)
		}
		return nil
	}, "b ready")

	metrics := b.MustRun(t, "curl", "-sf", "http://127.0.0.1:9095/metrics")
	for _, want := range []string{
		`petrel_bgp_sessions{state="Established"} 1`,
		`petrel_bgp_peer_up{peer="10.0.10.1",type="node specific"} 1`,
		`petrel_bgp_peer_prefixes{direction="received",peer="10.0.10.1"} 1`,
		`petrel_fib_routes 1`,
		`petrel_graceful_restart_active 0`,
		`petrel_route_update_to_fib_seconds_count`,
		`petrel_kernel_batch_duration_seconds_count`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(metrics)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
