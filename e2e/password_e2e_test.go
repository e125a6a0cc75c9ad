package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/e2e/harness"
)

// birdMD5Config is a BIRD ToR (10.0.0.200, AS 65000) peering with nodes
// 1..n with TCP MD5 password pw.
func birdMD5Config(n int, pw string) string {
	var b strings.Builder
	b.WriteString("log stderr all;\nrouter id 10.0.0.200;\nprotocol device { scan time 1; }\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "protocol bgp node%d {\n  local as 65000;\n  neighbor 10.0.0.%d as 64512;\n  password \"%s\";\n"+
			"  connect retry time 1;\n  connect delay time 1;\n  error wait time 1, 5;\n  ipv4 { import all; export none; };\n}\n", i, i, pw)
	}
	return b.String()
}

// TestBGPPasswordFromSecret: on the real kube-apiserver, a BGPPeer's
// password comes from a Secret in petrel's namespace and the session is
// Established against BIRD with that MD5 password; rotating the Secret
// (and BIRD's password) resets that session only, never the mesh's; a
// missing key is named in status and the peer skipped.
func TestBGPPasswordFromSecret(t *testing.T) {
	env, apiHost := kubeAPI(t)
	kube := kubeClient(t, env)
	ctx := t.Context()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bgp-secrets", Namespace: "kube-system"}, Data: map[string][]byte{"tor": []byte("first-pw")}}
	if _, err := kube.CoreV1().Secrets("kube-system").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kubePut(t, env, []storedObject{
		{kind: datastore.KindIPPool, name: "pods", spec: map[string]any{"cidr": "192.168.0.0/16", "vxlanMode": "Never", "ipipMode": "Never"}},
		{kind: datastore.KindBGPPeer, name: "tor", spec: map[string]any{"peerIP": "10.0.0.200", "asNumber": 65000,
			"password": map[string]any{"secretKeyRef": map[string]any{"name": "bgp-secrets", "key": "tor"}}}},
	})
	c := &clusterLab{lab: harness.New(t)}
	c.hub = c.lab.Node("switch")
	c.lab.Bridge(c.hub, "br0", "10.0.0.100/24")
	tor := c.lab.Node("tor")
	c.lab.Attach(c.hub, "br0", tor, "eth1", "10.0.0.200/24")
	c.bird = harness.StartBird(t, tor, birdMD5Config(2, "first-pw"))
	for i := 1; i <= 2; i++ {
		n := c.lab.Node(fmt.Sprintf("node%d", i))
		n.ForwardHostLoopback(t, apiHost)
		c.lab.Attach(c.hub, "br0", n, "eth1", fmt.Sprintf("10.0.0.%d/24", i))
		c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, n, "NODENAME="+n.Name, fmt.Sprintf("IP=10.0.0.%d", i),
			"DATASTORE_TYPE=kubernetes", "KUBECONFIG="+env.Kubeconfig))
	}
	c.waitSessions(t, map[int][]string{1: {"10.0.0.2", "10.0.0.200"}, 2: {"10.0.0.1", "10.0.0.200"}})
	established(t, "bird", c.bird.ProtocolState, "node1")
	mesh, _ := sessions(c.nodes[0])
	meshSince := mesh["10.0.0.2"].Since.AsTime()
	torSince := mesh["10.0.0.200"].Since.AsTime()

	// Rotate: BIRD first (the session drops on the MD5 mismatch), then the
	// Secret; petrel re-creates only the ToR session with the new password.
	if err := os.WriteFile(filepath.Join(c.bird.Dir, "bird.conf"), []byte(birdMD5Config(2, "second-pw")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := c.bird.Cmd("configure"); err != nil {
		t.Fatalf("birdc configure: %v\n%s", err, out)
	}
	s, err := kube.CoreV1().Secrets("kube-system").Get(ctx, "bgp-secrets", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Data["tor"] = []byte("second-pw")
	if _, err := kube.CoreV1().Secrets("kube-system").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	harness.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
		up, err := sessions(c.nodes[0])
		if err != nil {
			return err
		}
		if p := up["10.0.0.200"]; p == nil || !p.Since.AsTime().After(torSince) {
			return fmt.Errorf("node1's ToR session not re-established with the rotated password")
		}
		return nil
	}, "ToR session back with the new password")
	established(t, "bird", c.bird.ProtocolState, "node1")
	after, _ := sessions(c.nodes[0])
	if m := after["10.0.0.2"]; m == nil || !m.Since.AsTime().Equal(meshSince) {
		t.Errorf("the rotation reset node1's mesh session too: %v -> %v", meshSince, m)
	}

	// A key that is not in the Secret: the peer is skipped and named.
	apply := exec.Command(petrelBin, "apply", "-f", "-")
	apply.Env = []string{"DATASTORE_TYPE=kubernetes", "KUBECONFIG=" + env.Kubeconfig}
	apply.Stdin = strings.NewReader("apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: tor}\n" +
		"spec: {peerIP: 10.0.0.200, asNumber: 65000, password: {secretKeyRef: {name: bgp-secrets, key: rack}}}\n")
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("petrel apply: %v\n%s", err, out)
	}
	harness.Eventually(t, 15*time.Second, 200*time.Millisecond, func() error {
		out, err := c.nodes[0].Run(petrelBin, "status", "--socket", c.nodes[0].socket)
		if err != nil || !strings.Contains(out, `Secret "bgp-secrets" in namespace "kube-system" has no key "rack"`) || strings.Contains(out, "second-pw") {
			return fmt.Errorf("status does not name the missing key (or shows the password): %v\n%s", err, out)
		}
		return nil
	}, "missing key reported")
}
