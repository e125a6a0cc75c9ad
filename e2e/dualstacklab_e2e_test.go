package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/e2e/harness"
	"github.com/petrel-net/petrel/lab"
)

// TestLabDualStack is issue 15's dual-stack lab, deploy/lab/dualstack.clab.yml:
// three dual-stack petrel nodes and an IPv6-only one (IP=none,
// CALICO_ROUTER_ID=hash) on one segment with etcd and a BIRD ToR, the
// addresses from the links' ipv4/ipv6 lists. Every node has its sessions
// of each family Established, the ToR one per node and family; pods get
// an address of each family their node has; lab status shows an IPv4 and
// an IPv6 ping matrix, all 0% loss; the ToR's kernel has every node's
// IPv6 block via that node's IPv6 address; a pod that loses its IPv6
// default route is flagged in the IPv6 matrix only (exit 1); down leaves
// nothing.
func TestLabDualStack(t *testing.T) {
	const name = "dualstack"
	start := time.Now()
	up, status := labUpHealthy(t, name)
	for _, want := range []string{"4 petrel nodes, 7 pods", "starting petrel daemon on node1 (10.0.0.1/24, fd00:10::1/64)", "starting petrel daemon on node4 (fd00:10::4/64)", "IPPool default-ipv6-ippool fd00:192:168::/112"} {
		if !strings.Contains(up, want) {
			t.Errorf("up output lacks %q", want)
		}
	}
	wantStatus := []string{
		"node4: 4/4 sessions Established (IPv4 0/0, IPv6 4/4)",
		"every pod reaches every other pod over IPv4 and IPv6",
	}
	for i := 1; i <= 3; i++ {
		wantStatus = append(wantStatus, fmt.Sprintf("node%d: 7/7 sessions Established (IPv4 3/3, IPv6 4/4)", i))
	}
	for _, want := range wantStatus {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	for _, proto := range []string{"node1", "node2", "node3", "node1_v6", "node2_v6", "node3_v6", "node4_v6"} {
		if !regexp.MustCompile(`(?m)^` + proto + ` +BGP .* Established`).MatchString(status) {
			t.Errorf("the ToR's BIRD has no Established session %s", proto)
		}
	}
	// Nodes 1-3: 6 dual-stack pods; node4: one IPv6-only pod.
	for family, pods := range map[string]int{"IPv4": 6, "IPv6": 7} {
		m := section(status, family+" ping matrix")
		if got := strings.Count(m, " 0%"); got != pods*(pods-1) || strings.Count(m, "%") != pods*(pods-1) {
			t.Errorf("%s ping matrix: %d cells with 0%% loss, want %d, and no other:\n%s", family, got, pods*(pods-1), m)
		}
	}

	st, err := lab.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	pool6 := netip.MustParsePrefix("fd00:192:168::/112")
	blocks := map[string]netip.Prefix{} // each node's IPv6 block
	for _, p := range st.Pods {
		a6, err := netip.ParseAddr(p.Addr6)
		if err != nil || !pool6.Contains(a6) {
			t.Errorf("pod %s: IPv6 address %q, want one in %s", p.Name, p.Addr6, pool6)
			continue
		}
		if (p.Node == "node4") != (p.Addr == "") {
			t.Errorf("pod %s on %s: IPv4 address %q (only node4's pods have none)", p.Name, p.Node, p.Addr)
		}
		blocks[p.Node], _ = a6.Prefix(122)
	}
	for i := 1; i <= 4; i++ {
		node := fmt.Sprintf("node%d", i)
		via := fmt.Sprintf("%s via fd00:10::%d ", blocks[node], i)
		harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
			out, err := exec.Command("ip", "-n", lab.NSName(name, "tor"), "-6", "route", "show", "proto", "bird").CombinedOutput()
			if err != nil || !strings.Contains(string(out), via) {
				return fmt.Errorf("(%v) the ToR's IPv6 routes lack %q:\n%s", err, via, out)
			}
			return nil
		}, "the ToR routes %s's IPv6 block to it", node)
	}
	log, _ := os.ReadFile("/var/run/petrel-lab/" + name + "/logs/node4-petrel.log")
	if want := "routerID=" + config.HashRouterID("node4").String(); !strings.Contains(string(log), want) {
		t.Errorf("node4's log lacks %q (CALICO_ROUTER_ID=hash)", want)
	}

	// node3-pod1 loses its IPv6 default route: status names its IPv6
	// pings, only those, and exits 1; back again, it is healthy.
	pod := lab.NSName(name, "node3-pod1")
	if out, err := exec.Command("ip", "-n", pod, "-6", "route", "del", "default").CombinedOutput(); err != nil {
		t.Fatalf("ip -6 route del default: %v %s", err, out)
	}
	status, err = labCLI(t, "status", name)
	if err == nil || !strings.Contains(status, "Problems:") {
		t.Errorf("status with a pod cut off over IPv6: err %v, no problems:\n%s", err, status)
	}
	if !strings.Contains(status, "ping -6 default/node3-pod1 -> default/node1-pod1: 100% loss") ||
		!strings.Contains(status, "ping -6 default/node4-pod1 -> default/node3-pod1: 100% loss") ||
		strings.Contains(status, "\n  ping default/") {
		t.Errorf("status problems are not node3-pod1's IPv6 pings alone:\n%s", section(status, "Problems:"))
	}
	if m := section(status, "IPv4 ping matrix"); strings.Count(m, " 0%") != 30 {
		t.Errorf("IPv4 ping matrix suffers from the IPv6 route:\n%s", m)
	}
	if out, err := exec.Command("ip", "-n", pod, "-6", "route", "add", "default", "via", "fe80::ecee:eeff:feee:eeee", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("ip -6 route add default: %v %s", err, out)
	}
	harness.Eventually(t, 20*time.Second, time.Second, func() error {
		status, err = labCLI(t, "status", name)
		return err
	}, "status healthy again")

	labDownClean(t, name)
	t.Logf("up, checks and down took %v", time.Since(start).Round(time.Second))
}

// section is the part of status from the line starting with header to the
// next blank line.
func section(status, header string) string {
	i := strings.Index(status, header)
	if i < 0 {
		return ""
	}
	s := status[i:]
	if j := strings.Index(s, "\n\n"); j >= 0 {
		s = s[:j]
	}
	return s
}
