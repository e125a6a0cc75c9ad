package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// racksLab is two subnets of two petrel nodes each, joined by a router
// namespace that also runs etcd and a BIRD that peers with every node.
//
//	node1 10.1.0.1 ┐            ┌ node3 10.2.0.3
//	node2 10.1.0.2 ┴ br-a ─ router ─ br-b ┴ node4 10.2.0.4
//	               10.1.0.254      10.2.0.254
type racksLab struct {
	*clusterLab
	router *harness.Node
	pods   []*harness.Node
	addrs  []string
	// etcdURL is the router's etcd; device the VXLAN device the pods'
	// traffic is counted on.
	etcdURL, device string
}

const racksEtcd = "http://10.1.0.254:2379"

// rack is node i's subnet in the racks labs: 1 for node1 and node2, 2 for
// the others.
func rack(i int) int {
	if i <= 2 {
		return 1
	}
	return 2
}

func nodeAddr(i int) string { return fmt.Sprintf("10.%d.0.%d", rack(i), i) }

// newRacksRouter starts a racks lab: its router (also the hub), whose etcd
// will serve etcdURL; pod traffic is counted on device.
func newRacksRouter(t *testing.T, etcdURL, device string) (*racksLab, *harness.Lab) {
	harness.RequireRoot(t)
	lab := harness.New(t)
	r := &racksLab{clusterLab: &clusterLab{lab: lab}, etcdURL: etcdURL, device: device}
	r.router = lab.Node("router")
	r.hub = r.router
	return r, lab
}

func newRacksLab(t *testing.T, vxlanMode string) *racksLab {
	r, lab := newRacksRouter(t, racksEtcd, "vxlan.calico")
	lab.Bridge(r.router, "br-a", "10.1.0.254/24")
	lab.Bridge(r.router, "br-b", "10.2.0.254/24")

	r.startEtcd(t)

	// The router learns every block over BGP (needed for vxlanMode Never).
	birdPeers := map[string]string{}
	for i := 1; i <= 4; i++ {
		birdPeers[fmt.Sprintf("node%d", i)] = nodeAddr(i) + " as 64512;\n  multihop;\n  source address 10.1.0.254"
	}
	harness.StartBird(t, r.router, birdConfig("10.1.0.254", 64512, nil, birdPeers)+
		"protocol direct bridges { ipv4; interface \"br-*\"; }\nprotocol kernel { ipv4 { export all; }; }\n")
	r.racksApply(t, fmt.Sprintf(`apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: default-ipv4-ippool}
spec: {cidr: 192.168.0.0/16, blockSize: 26, vxlanMode: %s, ipipMode: Never, natOutgoing: true, nodeSelector: all()}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: router}
spec: {peerIP: 10.1.0.254, asNumber: 64512}
`, vxlanMode))

	for i := 1; i <= 4; i++ {
		n := r.attachNode(t, i, nodeAddr(i)+"/24", "10.1.0.254", "10.2.0.254")
		r.nodes = append(r.nodes, startPetrelFromDatastore(t, lab, n,
			"NODENAME="+n.Name, "IP="+nodeAddr(i)+"/24", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+racksEtcd))
	}
	return r
}

// attachNode plugs node i into its rack's bridge (br-a, br-b) with
// address cidr and a default route via its rack's router address, gw1 or
// gw2.
func (r *racksLab) attachNode(t *testing.T, i int, cidr, gw1, gw2 string) *harness.Node {
	t.Helper()
	n := r.lab.Node(fmt.Sprintf("node%d", i))
	bridge, gw := "br-a", gw1
	if rack(i) == 2 {
		bridge, gw = "br-b", gw2
	}
	r.lab.Attach(r.router, bridge, n, "eth1", cidr)
	n.MustRun(t, "ip", "route", "add", "default", "via", gw)
	return n
}

// startEtcd runs etcd in the router, serving r.etcdURL.
func (r *racksLab) startEtcd(t *testing.T) {
	t.Helper()
	dir := filepath.Join(r.lab.Dir(), "etcd")
	r.etcd = r.router.Start(t, "etcd", "etcd", "--data-dir", dir, "--name", "lab",
		"--listen-client-urls", r.etcdURL, "--advertise-client-urls", r.etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "lab=http://127.0.0.1:2380")
	harness.Eventually(t, 15*time.Second, 100*time.Millisecond, func() error {
		_, err := r.router.Run(petrelBin, "get", "ippools", "--etcd-endpoints", r.etcdURL)
		return err
	}, "etcd serving")
}

func (r *racksLab) racksApply(t *testing.T, doc string) {
	t.Helper()
	f := filepath.Join(r.lab.Dir(), fmt.Sprintf("doc-%d.yaml", time.Now().UnixNano()))
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := r.router.Run("env", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+r.etcdURL, petrelBin, "apply", "-f", f); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
}

// workload runs `petrel workload` on node i.
func (r *racksLab) workload(i int, args ...string) (string, error) {
	n := r.nodes[i-1]
	return n.Run(append([]string{"env", "NODENAME=" + n.Name, "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + r.etcdURL, petrelBin, "workload"}, args...)...)
}

// addPods puts one pod on every node, with `petrel workload add` and
// flags (--ipv4=false --ipv6: an IPv6 pod).
func (r *racksLab) addPods(t *testing.T, flags ...string) {
	for i := 1; i <= len(r.nodes); i++ {
		pod := r.lab.Node(fmt.Sprintf("pod%d", i))
		out, err := r.workload(i, append([]string{"add", "--name", "default/" + pod.Name, "--netns", pod.NS}, flags...)...)
		if err != nil {
			t.Fatalf("workload add on node%d: %v\n%s", i, err, out)
		}
		r.pods = append(r.pods, pod)
		r.addrs = append(r.addrs, strings.TrimSpace(out))
	}
}

// pingAll: every pod reaches every other pod, without loss.
func (r *racksLab) pingAll(t *testing.T) {
	t.Helper()
	pingMatrix(t, r.pods, r.addrs)
}

// pingMatrix: every pod reaches every other pod's address (addrs[j] is
// pods[j]'s, of either family), first at all, then 5 times without loss.
func pingMatrix(t *testing.T, pods []*harness.Node, addrs []string) {
	t.Helper()
	harness.Eventually(t, 30*time.Second, 500*time.Millisecond, func() error {
		for i, p := range pods {
			for j, addr := range addrs {
				if i == j {
					continue
				}
				if out, err := p.Run("ping", "-c", "1", "-W", "1", addr); err != nil {
					return fmt.Errorf("pod%d -> pod%d (%s): %v %s", i+1, j+1, addr, err, out)
				}
			}
		}
		return nil
	}, "pod-to-pod connectivity")
	for i, p := range pods {
		for j, addr := range addrs {
			if i == j {
				continue
			}
			out, err := p.Run("ping", "-c", "5", "-i", "0.05", "-W", "1", addr)
			if err != nil || !strings.Contains(out, " 0% packet loss") {
				t.Errorf("pod%d -> pod%d (%s): loss\n%s", i+1, j+1, addr, out)
			}
		}
	}
}

// vxlanTx is node i's transmitted packet counter of device (-1: no device).
func (r *racksLab) vxlanTx(i int, device string) int {
	out, err := r.nodes[i-1].Run("cat", "/sys/class/net/"+device+"/statistics/tx_packets")
	if err != nil {
		return -1
	}
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	return n
}

// encapsulated reports whether pinging pod j from pod i goes through node
// i's VXLAN device (r.device).
func (r *racksLab) encapsulated(t *testing.T, i, j int) bool {
	return r.pingThrough(i, r.device, r.addrs[j-1])
}

// pingThrough reports whether pinging addr from pod i goes through node
// i's device.
func (r *racksLab) pingThrough(i int, device, addr string) bool {
	before := r.vxlanTx(i, device)
	r.pods[i-1].Run("ping", "-c", "5", "-i", "0.05", "-W", "1", addr)
	after := r.vxlanTx(i, device)
	return before >= 0 && after-before >= 5
}

func TestDataplaneVXLANModes(t *testing.T) {
	for _, tt := range []struct {
		mode                  string
		sameSubnet, crossNets bool // encapsulated?
	}{
		{"CrossSubnet", false, true},
		{"Always", true, true},
		{"Never", false, false},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			r := newRacksLab(t, tt.mode)
			r.addPods(t)
			r.pingAll(t)
			if got := r.encapsulated(t, 1, 2); got != tt.sameSubnet {
				t.Errorf("%s: same-subnet traffic encapsulated = %v, want %v", tt.mode, got, tt.sameSubnet)
			}
			if got := r.encapsulated(t, 1, 3); got != tt.crossNets {
				t.Errorf("%s: cross-subnet traffic encapsulated = %v, want %v", tt.mode, got, tt.crossNets)
			}
			if tt.mode == "CrossSubnet" {
				r.checkPodAndCleanup(t)
			}
		})
	}
}

// checkPodAndCleanup: a pod looks like the seed's; adding twice is
// harmless; del leaves nothing; bad input leaves nothing half-made.
func (r *racksLab) checkPodAndCleanup(t *testing.T) {
	pod := r.pods[0]
	routes := pod.MustRun(t, "ip", "route")
	for _, want := range []string{"default via 169.254.1.1 dev eth0", "169.254.1.1 dev eth0 scope link"} {
		if !strings.Contains(routes, want) {
			t.Errorf("pod routes lack %q:\n%s", want, routes)
		}
	}
	if addrs := pod.MustRun(t, "ip", "-4", "addr", "show", "eth0"); !strings.Contains(addrs, r.addrs[0]+"/32") {
		t.Errorf("pod eth0:\n%s", addrs)
	}
	if out, err := pod.Run("arping", "-c", "1", "-w", "2", "-I", "eth0", "169.254.1.1"); err != nil || !strings.Contains(strings.ToLower(out), "ee:ee:ee:ee:ee:ee") {
		t.Errorf("arping 169.254.1.1:\n%s", out)
	}
	again, err := r.workload(1, "add", "--name", "default/"+pod.Name, "--netns", pod.NS)
	if err != nil || strings.TrimSpace(again) != r.addrs[0] {
		t.Errorf("second add: %v %q, want the same address %s", err, again, r.addrs[0])
	}
	if out, err := r.workload(1, "add", "--name", "default/ghost", "--netns", "no-such-netns"); err == nil {
		t.Errorf("add into a missing namespace succeeded: %s", out)
	}
	if out, err := r.workload(1, "del", "--name", "default/"+pod.Name, "--netns", pod.NS); err != nil {
		t.Fatalf("del: %v\n%s", err, out)
	}
	node := r.nodes[0]
	if links := node.MustRun(t, "ip", "-o", "link"); strings.Contains(links, ": cali") {
		t.Errorf("a cali veth is left:\n%s", links)
	}
	if routes := node.MustRun(t, "ip", "route", "show", "proto", "80"); strings.Contains(routes, r.addrs[0]) {
		t.Errorf("the pod route is left:\n%s", routes)
	}
	if out, _ := r.router.Run("env", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+r.etcdURL, petrelBin, "ipam", "check"); !strings.Contains(out, "no problems") {
		t.Errorf("ipam check after del:\n%s", out)
	}
	if _, err := r.workload(1, "del", "--name", "default/"+pod.Name); err != nil {
		t.Errorf("second del: %v", err)
	}
}
