package kubernetes

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/petrel-net/petrel/datastore"
)

// FuzzNodeAnnotations: reading a petrel Node out of a core Node's
// annotations never panics, and what reads back written again reads
// back the same (applyNode and nodeFromCore agree).
func FuzzNodeAnnotations(f *testing.F) {
	f.Add("10.0.0.5/24", "", "64512", "", "192.168.0.193", "66:aa:bb:cc:dd:ee")
	f.Add("10.0.0.6/24", "fd00::6/64", "1.10", "224.0.0.1", "", "")
	f.Add("", "", "notanumber", "", "", "")
	f.Add("", "", "65536.1", "", "", "")
	f.Fuzz(func(t *testing.T, ipv4, ipv6, asn, rrID, tunnel, mac string) {
		core := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{
			annIPv4Address: ipv4, annIPv6Address: ipv6, annASNumber: asn,
			annRouteReflectorClusterID: rrID, annIPv4VXLANTunnelAddr: tunnel, annVXLANTunnelMACAddr: mac,
		}}}
		obj, err := nodeFromCore(core)
		if err != nil {
			return
		}
		written := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n"}}
		applyNode(written, obj.(*datastore.Node))
		again, err := nodeFromCore(written)
		if err != nil {
			t.Fatalf("annotations %v read back, written as %v, no longer read: %v", core.Annotations, written.Annotations, err)
		}
		if a, b := nodeKey(obj.(*datastore.Node)), nodeKey(again.(*datastore.Node)); a != b {
			t.Fatalf("annotations %v: read %s, written and read again %s", core.Annotations, a, b)
		}
	})
}
