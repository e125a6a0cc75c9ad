package e2e

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// etcdPut stores a raw value under key through etcd's JSON gateway, as a
// writer other than petrel (a broken tool, a bad restore) would.
func (c *clusterLab) etcdPut(t *testing.T, key, value string) {
	t.Helper()
	b64 := base64.StdEncoding.EncodeToString
	body := fmt.Sprintf(`{"key":%q,"value":%q}`, b64([]byte(key)), b64([]byte(value)))
	c.hub.MustRun(t, "curl", "-sf", "-X", "POST", "-d", body, etcdURL+"/v3/kv/put")
}

// TestUndecodableNodeDoesNotBlockDaemons is issue #12, item 6, on etcd:
// one Node key holds a value that is not a Node. Both daemons still start
// and peer, and each names the bad object and its field in status
// Problems and in the petrel_datastore_objects_skipped metric.
func TestUndecodableNodeDoesNotBlockDaemons(t *testing.T) {
	c := newClusterLab(t, 0, strings.Replace(seedPool, "vxlanMode: CrossSubnet", "vxlanMode: Never", 1))
	c.etcdPut(t, "/calico/resources/v3/projectcalico.org/nodes/node-bad",
		`{"kind":"Node","metadata":{"name":"node-bad"},"spec":{"bgp":{"asNumber":"notanumber"}}}`)
	for i := 1; i <= 2; i++ {
		n := c.lab.Node(fmt.Sprintf("node%d", i))
		c.lab.Attach(c.hub, "br0", n, "eth1", fmt.Sprintf("10.0.0.%d/24", i))
		c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, n,
			"NODENAME="+n.Name, fmt.Sprintf("IP=10.0.0.%d", i), "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+etcdURL))
	}
	c.waitSessions(t, map[int][]string{1: {"10.0.0.2"}, 2: {"10.0.0.1"}})

	p := c.nodes[0]
	harness.Eventually(t, 10*time.Second, 200*time.Millisecond, func() error {
		out, err := p.Run(petrelBin, "status", "--socket", p.socket)
		if err != nil || !strings.Contains(out, `Node "node-bad" cannot be decoded: field spec.bgp.asNumber`) {
			return fmt.Errorf("status does not name node-bad and its field (%v):\n%s", err, out)
		}
		return nil
	}, "node1's status names the undecodable Node")
	out := p.MustRun(t, "curl", "-sf", "http://127.0.0.1:9095/metrics")
	if !strings.Contains(out, `petrel_datastore_objects_skipped{kind="Node"} 1`) {
		t.Errorf("metrics lack petrel_datastore_objects_skipped{kind=\"Node\"} 1:\n%s", grepLines(out, "petrel_datastore"))
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
