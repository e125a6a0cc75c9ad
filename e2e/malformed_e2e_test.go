package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/e2e/harness"
	"github.com/petrel-net/petrel/internal/testenv/kubeapi"
	"github.com/petrel-net/petrel/ipam"
)

// storedObject is one object a test writes straight into a datastore, as
// a writer other than petrel (a broken tool, a bad restore, a newer
// version) would: a spec of any shape, or a value that is not JSON at all.
type storedObject struct {
	kind    datastore.Kind
	name    string
	spec    map[string]any
	garbage string // etcd only: the whole stored value, not JSON
}

// bulkBlocks is how many good blocks node1 is given (and BlockAffinities:
// twice as many good objects).
const bulkBlocks = 150

// bulkObjects is a generated mix: 300 good objects (bulkBlocks confirmed
// blocks of node1's, block and affinity each) and 700 bad ones, 100 of
// each class: fields of the wrong type in five kinds (undecodable), and
// two kinds of decodable but invalid specs. With garbage set, half of the
// bad blocks are not JSON at all (possible in etcd only).
func bulkObjects(garbage bool) (good, bad []storedObject) {
	for i := range bulkBlocks {
		cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i / 4), byte(i % 4 * 64)}), 26)
		unallocated := make([]int, 64)
		for j := range unallocated {
			unallocated[j] = j
		}
		good = append(good,
			storedObject{kind: datastore.KindIPAMBlock, name: ipam.BlockName(cidr), spec: map[string]any{
				"cidr": cidr.String(), "affinity": "host:node1", "allocations": make([]any, 64),
				"unallocated": unallocated, "attributes": []any{}, "strictAffinity": false, "deleted": false}},
			storedObject{kind: datastore.KindBlockAffinity, name: ipam.AffinityName("node1", cidr), spec: map[string]any{
				"state": "confirmed", "node": "node1", "cidr": cidr.String(), "deleted": "false"}})
	}
	for i := range 100 {
		block := storedObject{kind: datastore.KindIPAMBlock, name: fmt.Sprintf("bad-block-%d", i), spec: map[string]any{"cidr": 42}}
		if garbage && i%2 == 0 {
			block.garbage = `{"kind":"IPAMBlock","spec":{"cidr":`
		}
		bad = append(bad, block,
			storedObject{kind: datastore.KindBlockAffinity, name: fmt.Sprintf("bad-affinity-%d", i), spec: map[string]any{"node": 7, "cidr": "192.168.200.0/26"}},
			storedObject{kind: datastore.KindBGPPeer, name: fmt.Sprintf("bad-peer-as-%d", i), spec: map[string]any{"peerIP": "10.0.0.9", "asNumber": "notanumber"}},
			storedObject{kind: datastore.KindNode, name: fmt.Sprintf("bad-node-%d", i), spec: map[string]any{"bgp": map[string]any{"asNumber": "notanumber"}}},
			storedObject{kind: datastore.KindIPPool, name: fmt.Sprintf("bad-pool-size-%d", i), spec: map[string]any{"cidr": "10.200.0.0/24", "blockSize": "big"}},
			storedObject{kind: datastore.KindBGPPeer, name: fmt.Sprintf("bad-peer-selector-%d", i), spec: map[string]any{"peerSelector": "has(", "asNumber": 64512}},
			storedObject{kind: datastore.KindIPPool, name: fmt.Sprintf("bad-pool-cidr-%d", i), spec: map[string]any{"cidr": "999.1.1.1/8"}})
	}
	return good, bad
}

// TestMalformedObjectsInBulk: two daemons peer over a real datastore;
// then 1,000 objects arrive at once, 700 of them malformed. Each bad one
// is named in status Problems, every good one takes effect (node1
// originates its 150 blocks, node2 routes them), and the session between
// the two never flaps. On etcd and on a kube-apiserver.
func TestMalformedObjectsInBulk(t *testing.T) {
	t.Run("etcd", func(t *testing.T) {
		c := newClusterLab(t, 0, seedPoolNoVXLAN)
		c.startNodes(t, nil, "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+etcdURL)
		good, bad := bulkObjects(true)
		checkBulk(t, c, good, bad, func(objs []storedObject) { c.etcdPutAll(t, objs) })
	})
	t.Run("kubernetes", func(t *testing.T) {
		env, apiHost := kubeAPI(t)
		c := &clusterLab{lab: harness.New(t)}
		c.hub = c.lab.Node("switch")
		c.lab.Bridge(c.hub, "br0", "10.0.0.100/24")
		kubePut(t, env, []storedObject{{kind: datastore.KindIPPool, name: "default-ipv4-ippool",
			spec: map[string]any{"cidr": "192.168.0.0/16", "blockSize": 26, "vxlanMode": "Never", "ipipMode": "Never", "nodeSelector": "all()"}}})
		reachAPI := func(n *harness.Node) { n.ForwardHostLoopback(t, apiHost) }
		c.startNodes(t, reachAPI, "DATASTORE_TYPE=kubernetes", "KUBECONFIG="+env.Kubeconfig)
		good, bad := bulkObjects(false)
		checkBulk(t, c, good, bad, func(objs []storedObject) { kubePut(t, env, objs) })
	})
}

var seedPoolNoVXLAN = strings.Replace(seedPool, "vxlanMode: CrossSubnet", "vxlanMode: Never", 1)

// startNodes makes node1 and node2, attaches them to the hub's bridge,
// runs prepare (if any) on each and starts a daemon on each with env.
func (c *clusterLab) startNodes(t *testing.T, prepare func(*harness.Node), env ...string) {
	t.Helper()
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("node%d", i)
		n := c.lab.Node(name)
		if prepare != nil {
			prepare(n)
		}
		c.lab.Attach(c.hub, "br0", n, "eth1", fmt.Sprintf("10.0.0.%d/24", i))
		c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, n,
			append([]string{"NODENAME=" + name, fmt.Sprintf("IP=10.0.0.%d", i)}, env...)...))
	}
}

// checkBulk waits for the two daemons to peer, writes good and bad
// objects with put, and checks what each daemon makes of them.
func checkBulk(t *testing.T, c *clusterLab, good, bad []storedObject, put func([]storedObject)) {
	t.Helper()
	c.waitSessions(t, map[int][]string{1: {"10.0.0.2"}, 2: {"10.0.0.1"}})
	mixed := make([]storedObject, 0, len(good)+len(bad))
	for i := range max(len(good), len(bad)) { // interleaved, as a restore would
		if i < len(bad) {
			mixed = append(mixed, bad[i])
		}
		if i < len(good) {
			mixed = append(mixed, good[i])
		}
	}
	t0 := time.Now()
	put(mixed)
	t.Logf("wrote %d objects (%d malformed) in %v", len(mixed), len(bad), time.Since(t0).Round(time.Millisecond))

	harness.Eventually(t, 60*time.Second, 500*time.Millisecond, func() error {
		routes := fib(t, c.nodes[1].Node)
		blackholes := c.nodes[0].MustRun(t, "ip", "route", "show", "type", "blackhole")
		for _, o := range good {
			if o.kind != datastore.KindIPAMBlock {
				continue
			}
			cidr := o.spec["cidr"].(string)
			if gws := routes[cidr].gateways(); !slices.Contains(gws, "10.0.0.1") {
				return fmt.Errorf("node2 has no route to node1's block %s (via %v)", cidr, gws)
			}
			if !strings.Contains(blackholes, "blackhole "+cidr+" ") {
				return fmt.Errorf("node1 has no blackhole for its block %s", cidr)
			}
		}
		return nil
	}, "every good block originated by node1 and routed by node2")
	t.Logf("every good object in effect %v after the write", time.Since(t0).Round(time.Millisecond))

	for i, p := range c.nodes {
		var status string
		harness.Eventually(t, 30*time.Second, 500*time.Millisecond, func() error {
			out, err := p.Run(petrelBin, "status", "--socket", p.socket)
			if err != nil {
				return err
			}
			status = out
			for _, o := range bad {
				if !strings.Contains(out, `"`+o.name+`"`) {
					return fmt.Errorf("node%d: status does not name %s %q", i+1, o.kind, o.name)
				}
			}
			return nil
		}, "node%d's status names every malformed object", i+1)
		if !strings.Contains(status, "field spec.blockSize") || !strings.Contains(status, "peerSelector") {
			t.Errorf("node%d: problems do not name the fields:\n%s", i+1, grepLines(status, "bad-pool-size-0"))
		}
		peer := fmt.Sprintf("10.0.0.%d", 2-i)
		got, err := p.peer(peer)
		if err != nil || got.State != "Established" || got.Flaps != 0 {
			t.Errorf("node%d: session with %s after the bad objects: %v, %v (want Established, 0 flaps)", i+1, peer, got, err)
		}
	}
}

// etcdPutAll writes objects in transactions of 100 puts (etcd allows 128)
// through etcd's JSON gateway.
func (c *clusterLab) etcdPutAll(t *testing.T, objs []storedObject) {
	t.Helper()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for start := 0; start < len(objs); start += 100 {
		var ops []map[string]any
		for _, o := range objs[start:min(start+100, len(objs))] {
			value := o.garbage
			if value == "" {
				raw, err := json.Marshal(map[string]any{"apiVersion": "projectcalico.org/v3", "kind": string(o.kind),
					"metadata": map[string]any{"name": o.name}, "spec": o.spec})
				if err != nil {
					t.Fatal(err)
				}
				value = string(raw)
			}
			key := "/calico/resources/v3/projectcalico.org/" + o.kind.Plural() + "/" + o.name
			ops = append(ops, map[string]any{"request_put": map[string]string{"key": b64(key), "value": b64(value)}})
		}
		body, _ := json.Marshal(map[string]any{"success": ops})
		out := c.hub.MustRun(t, "curl", "-sf", "-X", "POST", "-d", string(body), etcdURL+"/v3/kv/txn")
		if !strings.Contains(out, `"succeeded":true`) {
			t.Fatalf("etcd txn: %s", out)
		}
	}
}

// kubePut creates objects on a kube-apiserver: Calico kinds as
// crd.projectcalico.org/v1 custom resources with the spec as given (the
// CRDs keep unknown fields, so a field of the wrong type is stored), a
// Node as a core Node whose projectcalico.org/ASNumber annotation carries
// the spec's bgp.asNumber.
func kubePut(t *testing.T, env *kubeapi.Env, objs []storedObject) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	core, err := kubernetes.NewForConfig(env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, o := range objs {
		if o.kind == datastore.KindNode {
			as := fmt.Sprint(o.spec["bgp"].(map[string]any)["asNumber"])
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: o.name, Annotations: map[string]string{"projectcalico.org/ASNumber": as}}}
			if _, err := core.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create Node %s: %v", o.name, err)
			}
			continue
		}
		gvr := schema.GroupVersionResource{Group: datastore.Group, Version: datastore.Version, Resource: o.kind.Plural()}
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": datastore.Group + "/" + datastore.Version, "kind": string(o.kind),
			"metadata": map[string]any{"name": o.name}, "spec": jsonSafe(t, o.spec)}}
		if _, err := dyn.Resource(gvr).Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create %s %s: %v", o.kind, o.name, err)
		}
	}
}

// jsonSafe round-trips v through JSON: unstructured objects hold only
// JSON types (int64, float64, []any), not Go ints or typed slices.
func jsonSafe(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}
