package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/petrel-net/petrel/e2e/harness"
	"github.com/petrel-net/petrel/lab"
)

// TestLabServices is deploy/lab/services.clab.yml: a kube-apiserver beside
// the lab's etcd, a BIRD ToR, three petrel nodes and the Services of
// deploy/lab/services.resources.yaml. The ToR has the cluster range from
// all three nodes (an ECMP route in its kernel), each Local Service's
// addresses only from the nodes with its endpoints, the LoadBalancer
// Service an address from the LoadBalancer pool; an endpoint that moves
// moves the route; `lab status` shows it all in its Service routes
// section; down leaves nothing.
func TestLabServices(t *testing.T) {
	harness.RequireRoot(t)
	if _, err := lab.KubeBinary("kube-apiserver"); err != nil {
		t.Skipf("services lab: %v", err)
	}
	start := time.Now()
	labRoundTrip(t, "services", 3, 0, 3, serviceRoutesAtToR)
	t.Logf("up, checks and down took %v", time.Since(start).Round(time.Second))
}

// serviceRoutesAtToR checks the services lab's ToR and status.
func serviceRoutesAtToR(t *testing.T, name string) {
	const (
		clusterRange = "10.96.0.0/24"
		lbPool       = "192.0.2.0/24"
	)
	tor := &harness.Bird{Socket: "/var/run/petrel-lab/" + name + "/tor-bird.ctl"}
	const node1, node2, node3 = "10.0.0.1", "10.0.0.2", "10.0.0.3"
	waitToR := func(prefix string, want ...string) { t.Helper(); waitBirdHops(t, tor, 30*time.Second, prefix, want...) }

	waitToR(clusterRange, node1, node2, node3)
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		out, err := exec.Command("ip", "-n", lab.NSName(name, "tor"), "route", "show", clusterRange).CombinedOutput()
		if n := strings.Count(string(out), "nexthop via"); err != nil || n != 3 {
			return fmt.Errorf("the ToR's kernel route %q (%v): %d next hops, want 3", out, err, n)
		}
		return nil
	}, "an ECMP route for the cluster range in the ToR's kernel")
	// cache: internalTrafficPolicy Local, its endpoint on node3.
	waitToR("10.96.0.20/32", node3)
	// web: externalTrafficPolicy Local, endpoints on node1 and node2; its
	// cluster IP and external IP.
	waitToR("10.96.0.50/32", node1, node2)
	waitToR("203.0.113.10/32", node1, node2)
	// api: cluster policy, the range covers it.
	if from, err := birdHops(tor, "10.96.0.10/32"); err != nil || from != nil {
		t.Errorf("the ToR has the cluster-policy Service's host route from %v (%v)", from, err)
	}

	_, kube := k8sLabClient(t, name)
	web, err := kube.CoreV1().Services("default").Get(bg(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(web.Status.LoadBalancer.Ingress) != 1 {
		t.Fatalf("Service web: LoadBalancer ingress %+v, want one address", web.Status.LoadBalancer.Ingress)
	}
	lbIP := web.Status.LoadBalancer.Ingress[0].IP
	if a, err := netip.ParseAddr(lbIP); err != nil || !netip.MustParsePrefix(lbPool).Contains(a) {
		t.Fatalf("Service web got %q, not an address of the LoadBalancer pool %s", lbIP, lbPool)
	}
	waitToR(lbIP+"/32", node1, node2)
	waitToR(lbPool, node1, node2, node3)

	status, err := labCLI(t, "status", name)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, status)
	}
	for _, want := range []string{
		`Service routes \(BGPConfiguration default: cluster 10\.96\.0\.0/24, external 203\.0\.113\.0/24, LoadBalancer 192\.0\.2\.0/24\):`,
		`tor \(BIRD's table\):`,
		`10\.96\.0\.0/24 +node1, node2, node3 +cluster range`,
		`10\.96\.0\.20/32 +node3 +default/cache cluster IP`,
		`10\.96\.0\.50/32 +node1, node2 +default/web cluster IP`,
		regexp.QuoteMeta(lbIP+"/32") + ` +node1, node2 +default/web LoadBalancer IP`,
		`node3 +10\.96\.0\.0/24, 10\.96\.0\.20/32, 192\.0\.2\.0/24, 203\.0\.113\.0/24\n`,
		`every router has each Service prefix from exactly the nodes advertising it`,
	} {
		if !regexp.MustCompile(want).MatchString(status) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}

	// Move web's endpoint from node1 to node3: the ToR and status follow.
	es, err := kube.DiscoveryV1().EndpointSlices("default").Get(bg(), "web-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, ep := range es.Endpoints {
		if ep.NodeName != nil && *ep.NodeName == "node1" {
			es.Endpoints[i] = discoveryv1.Endpoint{Addresses: []string{"192.168.30.2"}, NodeName: ptrTo("node3"), Conditions: ep.Conditions}
		}
	}
	if _, err := kube.DiscoveryV1().EndpointSlices("default").Update(bg(), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitToR("10.96.0.50/32", node2, node3)
	waitToR(lbIP+"/32", node2, node3)
	harness.Eventually(t, 10*time.Second, 500*time.Millisecond, func() error {
		status, err = labCLI(t, "status", name)
		if err != nil || !regexp.MustCompile(`10\.96\.0\.50/32 +node2, node3 +default/web`).MatchString(status) {
			return fmt.Errorf("status (%v) does not show web's cluster IP from node2 and node3:\n%s", err, status)
		}
		return nil
	}, "status follows the moved endpoint")

	// The ToR loses node2's session: status names every Service prefix
	// it no longer has from node2, and exits 1.
	if out, err := tor.Cmd("disable", "node2"); err != nil {
		t.Fatalf("birdc disable node2: %v %s", err, out)
	}
	harness.Eventually(t, 10*time.Second, 500*time.Millisecond, func() error {
		status, err = labCLI(t, "status", name)
		if want := "tor: Service prefix 10.96.0.50/32 from node3, but advertised by node2, node3"; err == nil || !strings.Contains(status, want) {
			return fmt.Errorf("status (%v) lacks %q:\n%s", err, want, status)
		}
		return nil
	}, "status reports the ToR's missing routes")
	if out, err := tor.Cmd("enable", "node2"); err != nil {
		t.Fatalf("birdc enable node2: %v %s", err, out)
	}
}
