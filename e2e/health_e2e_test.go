package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

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

	// No daemon at all: not live, exit 1, and it says why.
	if out, err := a.Run(petrelBin, "health", "--live", "--socket", lab.Dir()+"/nobody.sock"); err == nil || !strings.Contains(out, "not live: no petrel daemon answering") {
		t.Errorf("health without a daemon: %v\n%s", err, out)
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
	checkMetricsMatch(t, b, pb, metrics)
	for _, want := range []string{
		`petrel_bgp_sessions{family="ipv4",state="Established"} 1`,
		`petrel_bgp_peer_up{peer="10.0.10.1",type="node specific"} 1`,
		`petrel_bgp_peer_prefixes{direction="received",peer="10.0.10.1"} 1`,
		`petrel_fib_routes{family="ipv4"} 1`,
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

// checkMetricsMatch parses the scrape with Prometheus' own text parser and
// compares it with what petrel status and the kernel say.
func checkMetricsMatch(t *testing.T, n *harness.Node, p *petrelNode, text string) {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		f, ok := families[name]
		if !ok {
			t.Fatalf("no metric %s", name)
		}
		for _, m := range f.Metric {
			match := true
			for _, l := range m.Label {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					match = false
				}
			}
			if match {
				if m.Gauge != nil {
					return m.Gauge.GetValue()
				}
				return m.Counter.GetValue()
			}
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	if got, want := value("petrel_fib_routes", map[string]string{"family": "ipv4"}), float64(len(fib(t, n))); got != want {
		t.Errorf("petrel_fib_routes = %v, the kernel has %v", got, want)
	}
	peer, err := p.peer("10.0.10.1")
	if err != nil {
		t.Fatal(err)
	}
	if got := value("petrel_bgp_peer_prefixes", map[string]string{"peer": "10.0.10.1", "direction": "received"}); got != float64(peer.PrefixesReceived) {
		t.Errorf("received prefixes: metrics %v, status %d", got, peer.PrefixesReceived)
	}
	if got := value("petrel_bgp_peer_prefixes", map[string]string{"peer": "10.0.10.1", "direction": "advertised"}); got != float64(peer.PrefixesAdvertised) {
		t.Errorf("advertised prefixes: metrics %v, status %d", got, peer.PrefixesAdvertised)
	}
	if got := value("petrel_bgp_sessions", map[string]string{"family": "ipv4", "state": "Established"}); got != 1 {
		t.Errorf("established sessions = %v", got)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
