package kubernetes_test

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/datastoretest"
	"github.com/petrel-net/petrel/datastore/kubernetes"
	"github.com/petrel-net/petrel/internal/testenv/kubeapi"
)

// TestContract runs the datastore contract against a real kube-apiserver.
// One server serves every case (starting one takes seconds); each case
// gets it emptied first.
func TestContract(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a kube-apiserver")
	}
	env := kubeapi.Start(t)
	datastoretest.Run(t, func(t *testing.T) datastore.Backend {
		b, err := kubernetes.New(env.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		wipe(t, b)
		return b
	})
}

// wipe deletes every object of every kind, Nodes included.
func wipe(t *testing.T, b datastore.Backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, kind := range datastore.Kinds {
		objs, _, err := b.List(ctx, kind)
		bad, partial := datastore.SkippedObjects(err)
		if err != nil && !partial {
			t.Fatalf("wipe: %v", err)
		}
		names := objectNames(objs)
		for _, o := range bad {
			names = append(names, o.Name)
		}
		for _, name := range names {
			if err := b.Delete(ctx, kind, name, ""); err != nil && !errors.Is(err, datastore.ErrNotFound) {
				t.Fatalf("wipe: %v", err)
			}
		}
	}
}

// TestNodeKeepsForeignFields: an update of a petrel Node must leave the
// rest of the core Node (other annotations, spec) as the kubelet wrote it.
func TestNodeKeepsForeignFields(t *testing.T) {
	env, b := startBackend(t)
	ctx := context.Background()

	o, _ := datastore.New(datastore.KindNode)
	n := o.(*datastore.Node)
	n.Name = "node-b"
	asn := uint32(64512)
	n.Spec.BGP = &datastore.NodeBGPSpec{IPv4Address: "10.0.0.7/24", ASNumber: &asn}
	created, err := b.Create(ctx, n)
	if err != nil {
		t.Fatal(err)
	}

	// What the kubelet and others write, through the core API.
	cs := coreClient(t, env)
	core, err := cs.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := core.Annotations["projectcalico.org/IPv4Address"]; got != "10.0.0.7/24" {
		t.Errorf("IPv4Address annotation = %q", got)
	}
	if got := core.Annotations["projectcalico.org/ASNumber"]; got != "64512" {
		t.Errorf("ASNumber annotation = %q", got)
	}
	core.Annotations["example.com/other"] = "keep"
	core.Spec.PodCIDR = "192.168.7.0/24"
	if _, err := cs.CoreV1().Nodes().Update(ctx, core, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The petrel Node read before that write is now stale.
	stale := created.(*datastore.Node)
	stale.Spec.BGP.IPv4Address = "10.0.0.8/24"
	if _, err := b.Update(ctx, stale); !errors.Is(err, datastore.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}

	fresh, err := b.Get(ctx, datastore.KindNode, "node-b")
	if err != nil {
		t.Fatal(err)
	}
	fn := fresh.(*datastore.Node)
	fn.Spec.BGP.IPv4Address = "10.0.0.8/24"
	fn.Spec.BGP.ASNumber = nil
	if _, err := b.Update(ctx, fn); err != nil {
		t.Fatal(err)
	}
	core, err = cs.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if core.Annotations["example.com/other"] != "keep" || core.Spec.PodCIDR != "192.168.7.0/24" {
		t.Errorf("foreign fields lost: annotations %v, podCIDR %q", core.Annotations, core.Spec.PodCIDR)
	}
	if got := core.Annotations["projectcalico.org/IPv4Address"]; got != "10.0.0.8/24" {
		t.Errorf("IPv4Address annotation = %q", got)
	}
	if _, ok := core.Annotations["projectcalico.org/ASNumber"]; ok {
		t.Error("ASNumber annotation kept after the field was cleared")
	}

	if err := b.Delete(ctx, datastore.KindNode, "node-b", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Nodes().Get(ctx, "node-b", metav1.GetOptions{}); err == nil {
		t.Error("core Node still there after Delete")
	}
}

func coreClient(t *testing.T, env *kubeapi.Env) k8s.Interface {
	t.Helper()
	cs, err := k8s.NewForConfig(env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func objectNames(objs []datastore.Object) []string {
	names := make([]string, 0, len(objs))
	for _, o := range objs {
		names = append(names, o.GetName())
	}
	return names
}

// TestUndecodable: one core Node whose projectcalico.org/ASNumber
// annotation is not a number hides only itself from List and Follow.
func TestUndecodable(t *testing.T) {
	env, b := startBackend(t)
	wipe(t, b)
	cs := coreClient(t, env)
	datastoretest.RunUndecodable(t, b, func(t *testing.T, name string) string {
		const ann = "projectcalico.org/ASNumber"
		nodes := cs.CoreV1().Nodes()
		n, err := nodes.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			n = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{ann: "notanumber"}}}
			_, err = nodes.Create(t.Context(), n, metav1.CreateOptions{})
		} else {
			n.Annotations[ann] = "notanumber"
			_, err = nodes.Update(t.Context(), n, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatalf("write Node %s with a bad %s: %v", name, ann, err)
		}
		return "metadata.annotations[" + ann + "]"
	})
}

// startBackend starts a kube-apiserver of its own for t (skipping under
// -short) and connects a backend to it.
func startBackend(t *testing.T) (*kubeapi.Env, *kubernetes.Backend) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a kube-apiserver")
	}
	env := kubeapi.Start(t)
	b, err := kubernetes.New(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return env, b
}
