package bench

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// etcdURL is where the reflector's etcd listens: the node namespace's own
// loopback.
const etcdURL = "http://127.0.0.1:2379"

// reflectorResources are the reflector datastore's fixed objects: an
// IPPool holding the neighbours' blocks (a reflector passes on pool routes
// only; no VXLAN, so that petrel claims no tunnel address, and with it no
// block of its own, as it starts), and calico's route reflector set-up —
// the node-to-node mesh off, and every node peering with the nodes
// labelled route-reflector, which gives the reflector one (reverse)
// session per client.
const reflectorResources = `apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: bench-pool}
spec: {cidr: %s, blockSize: 26, vxlanMode: Never, ipipMode: Never, natOutgoing: true, nodeSelector: all()}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {nodeToNodeMeshEnabled: false}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: peer-with-route-reflectors}
spec: {nodeSelector: all(), peerSelector: route-reflector == 'true'}
`

// preparePetrelReflector readies petrel as a route reflector the only way
// petrel can be one: in datastore mode, as calico-node is, with Node
// resources in etcd — its own with routeReflectorClusterID and the label
// route-reflector, and one per neighbour, which calico's usual BGPPeer
// (reflectorResources) turns into route reflector clients. etcd (in the node's namespace, not counted) and the resources
// are set up before the clock starts; the returned function starts the
// daemon.
func preparePetrelReflector(b *testing.B, lab *harness.Lab, n *harness.Node, self netip.Prefix, clusterID string, peers []netip.Prefix, pool netip.Prefix) func() *nodeDaemon {
	b.Helper()
	requireInstalled(b, "petrel as reflector (datastore mode needs etcd)", "etcd")
	n.Start(b, "etcd", "etcd", "--data-dir", filepath.Join(lab.Dir(), "etcd"), "--name", "bench",
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "bench=http://127.0.0.1:2380")
	store := []string{"env", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + etcdURL}
	petrelCmd := func(args ...string) (string, error) {
		return n.Run(append(append(store, petrelBin), args...)...)
	}
	harness.Eventually(b, 20*time.Second, 100*time.Millisecond, func() error {
		_, err := petrelCmd("get", "ippools")
		return err
	}, "etcd answers in %s", n.Name)

	docs := []string{fmt.Sprintf(reflectorResources, pool), nodeResource(n.Name, self, clusterID)}
	for _, p := range peers {
		docs = append(docs, nodeResource("peer-"+strings.ReplaceAll(p.Addr().String(), ".", "-"), p, ""))
	}
	path := filepath.Join(lab.Dir(), "resources.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(docs, "---\n")), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := petrelCmd("apply", "-f", path); err != nil {
		b.Fatalf("petrel apply: %v\n%s", err, out)
	}

	return func() *nodeDaemon {
		sock := filepath.Join(lab.Dir(), n.Name+".sock")
		env := append(store, "NODENAME="+n.Name, "IP="+self.String())
		p := n.Start(b, "petrel", append(env, petrelBin, "daemon", "--socket", sock)...)
		return &nodeDaemon{Kind: "petrel", Procs: []*harness.Process{p}, Socket: sock}
	}
}

// nodeResource is a calico Node with a BGP address; with a cluster id, a
// route reflector, labelled as such.
func nodeResource(name string, addr netip.Prefix, clusterID string) string {
	labels, rr := "", ""
	if clusterID != "" {
		labels, rr = ", labels: {route-reflector: 'true'}", ", routeReflectorClusterID: "+clusterID
	}
	return fmt.Sprintf("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: %s%s}\nspec: {bgp: {ipv4Address: %s%s}}\n",
		name, labels, addr, rr)
}
