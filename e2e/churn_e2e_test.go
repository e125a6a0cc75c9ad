package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// churnPairs is how many veth pairs the churn loop creates and deletes: two
// thousand links, as on a node starting a thousand pods.
const churnPairs = 1000

// startLinkChurn creates and deletes churnPairs cali veth pairs (up, so
// each also brings IPv6 link-local addresses and routes) in n, in a loop,
// until the Lab stops it: every link, address and route dump in n then
// races with changes to the same table.
func startLinkChurn(t testing.TB, lab *harness.Lab, n *harness.Node) *harness.Process {
	t.Helper()
	var add, del strings.Builder
	for i := range churnPairs {
		fmt.Fprintf(&add, "link add cali%07d type veth peer name churn%07d\nlink set cali%07d up\nlink set churn%07d up\n", i, i, i, i)
		fmt.Fprintf(&del, "link del cali%07d\n", i)
	}
	addFile, delFile := filepath.Join(lab.Dir(), "churn-add.batch"), filepath.Join(lab.Dir(), "churn-del.batch")
	for path, body := range map[string]string{addFile: add.String(), delFile: del.String()} {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loop := fmt.Sprintf("while :; do ip -force -batch %s; ip -force -batch %s; done", addFile, delFile)
	return n.Start(t, "churn", "sh", "-c", loop)
}

// TestDumpChurnDoesNotStopPetrel: thousands of cali veths come and go in
// the node's namespace while petrel starts and runs, so its link, address
// and route dumps are interrupted again and again (issue #12, item 4).
// petrel must stay up and still install the route its peer advertises.
func TestDumpChurnDoesNotStopPetrel(t *testing.T) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	tor, node := lab.Node("tor"), lab.Node("node")
	lab.Link(tor, "eth1", "10.200.0.1/24", node, "eth1", "10.200.0.2/24")
	const prefix = "10.90.0.0/24"
	harness.StartBird(t, tor, birdConfig("10.200.0.1", 64512, []string{prefix}, map[string]string{"node": "10.200.0.2 as 64512"}))

	churn := startLinkChurn(t, lab, node)
	harness.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		out, err := node.Run("ip", "-o", "link", "show", "type", "veth")
		if n := strings.Count(out, "\n"); err != nil || n < churnPairs {
			return fmt.Errorf("%d veths (%v)", n, err)
		}
		return nil
	}, "churn loop reaches %d veths", churnPairs)

	p := startPetrel(t, lab, node, petrelConfig("node", "10.200.0.2", 64512, []peerSpec{{Address: "10.200.0.1", AS: 64512}}))
	harness.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if p.proc.Exited() {
			t.Fatalf("petrel exited under link churn:\n%s", p.proc.Log())
		}
		if gw := fib(t, node)[prefix].Gateway; gw != "10.200.0.1" {
			return fmt.Errorf("%s via %q", prefix, gw)
		}
		return nil
	}, "petrel installs %s via the peer while links churn", prefix)

	// Several device and route scans (every 2 s) under churn.
	time.Sleep(8 * time.Second)
	if churn.Exited() {
		t.Fatalf("churn loop stopped early:\n%s", churn.Log())
	}
	if p.proc.Exited() {
		t.Fatalf("petrel exited under link churn:\n%s", p.proc.Log())
	}
	if gw := fib(t, node)[prefix].Gateway; gw != "10.200.0.1" {
		t.Fatalf("after churn: %s via %q, want via 10.200.0.1", prefix, gw)
	}
}
