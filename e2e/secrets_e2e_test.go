package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestSecretsNeverLeak: two petrels peer over TCP MD5 with debug logging;
// a reload with a bad password is refused. The password is in none of
// the logs, status (which says a password is set), routes, health or
// metrics output.
func TestSecretsNeverLeak(t *testing.T) {
	harness.RequireRoot(t)
	const password = "Md5-S3cret-7e21"
	lab := harness.New(t)
	a, b := lab.Node("a"), lab.Node("b")
	lab.Link(a, "eth1", "10.0.50.1/24", b, "eth1", "10.0.50.2/24")
	pw := "password: " + password
	pa := startPetrel(t, lab, a, petrelConfig("a", "10.0.50.1", 64512, []peerSpec{{Address: "10.0.50.2", AS: 64512, Extra: pw}}, "192.168.50.0/26"))
	pb := startPetrel(t, lab, b, petrelConfig("b", "10.0.50.2", 64512, []peerSpec{{Address: "10.0.50.1", AS: 64512, Extra: pw}}, "192.168.51.0/26"))
	established(t, "a", pa.PeerState, "10.0.50.2")
	hasRoute(t, "b", pb.Routes, "192.168.50.0/26", "10.0.50.1")

	// A reload whose password is too long for TCP MD5 is refused.
	pa.writeConfig(petrelConfig("a", "10.0.50.1", 64512, []peerSpec{{Address: "10.0.50.2", AS: 64512, Extra: pw + strings.Repeat("x", 80)}}, "192.168.50.0/26"))
	if err := pa.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		if log, _ := os.ReadFile(pa.proc.LogPath); !strings.Contains(string(log), "reload refused") {
			return errorString("no reload refusal in the log yet")
		}
		return nil
	}, "the bad reload refused")

	var outputs []string
	for _, p := range []*petrelNode{pa, pb} {
		for _, args := range [][]string{{"status"}, {"status", "-o", "json"}, {"routes"}, {"health", "--bgp-ready", "--kernel-ready", "--live"}} {
			out, _ := p.Run(append([]string{petrelBin}, append(args, "--socket", p.socket)...)...)
			outputs = append(outputs, out)
		}
		outputs = append(outputs, p.MustRun(t, "curl", "-sf", "http://127.0.0.1:9095/metrics"))
		log, err := os.ReadFile(p.proc.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(log))
	}
	if !strings.Contains(outputs[1], `"passwordSet": true`) {
		t.Errorf("status -o json does not say a password is set:\n%s", outputs[1])
	}
	for i, o := range outputs {
		if strings.Contains(o, password) {
			t.Errorf("output %d shows the MD5 password:\n%s", i, grepLines(o, password))
		}
	}
}

// daemonCaps are the only capabilities the DaemonSet gives petrel
// (deploy/k8s, docs/security.md): netlink writes and port 179.
var daemonCaps = []string{"net_admin", "net_bind_service"}

// TestDaemonNeedsOnlyItsCapabilities: petrel run as root with every
// capability but daemonCaps dropped (bounding set, so for good) still
// listens on 179, peers over TCP MD5, installs its routes in the kernel and
// serves its control socket.
func TestDaemonNeedsOnlyItsCapabilities(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	a, b := lab.Node("a"), lab.Node("b")
	lab.Link(a, "eth1", "10.0.60.1/24", b, "eth1", "10.0.60.2/24")
	const pw = "password: caps-test"
	caps := "-all,+" + strings.Join(daemonCaps, ",+")
	pa := startPetrelUnder(t, lab, a, petrelConfig("a", "10.0.60.1", 64512, []peerSpec{{Address: "10.0.60.2", AS: 64512, Extra: pw}}, "192.168.60.0/26"),
		"setpriv", "--bounding-set="+caps, "--inh-caps="+caps, "--ambient-caps="+caps, "--")
	if status := pa.MustRun(t, "grep", "CapBnd", "/proc/"+strconv.Itoa(pa.proc.Cmd.Process.Pid)+"/status"); !strings.Contains(status, "0000000000001400") {
		t.Fatalf("petrel runs with %s, want only NET_ADMIN and NET_BIND_SERVICE (0x1400)", status)
	}
	pb := startPetrel(t, lab, b, petrelConfig("b", "10.0.60.2", 64512, []peerSpec{{Address: "10.0.60.1", AS: 64512, Extra: pw + "\n    passive: true"}}, "192.168.61.0/26"))
	established(t, "a", pa.PeerState, "10.0.60.2")
	hasRoute(t, "a", pa.Routes, "192.168.61.0/26", "10.0.60.2")
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		if out := a.MustRun(t, "ip", "route", "show", "192.168.61.0/26", "proto", "12"); !strings.Contains(out, "via 10.0.60.2") {
			return errorString("192.168.61.0/26 not in a's kernel: " + out)
		}
		return nil
	}, "a installs b's block")
	hasRoute(t, "b", pb.Routes, "192.168.60.0/26", "10.0.60.1")
}
