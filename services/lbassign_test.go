package services

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/memory"
	"github.com/petrel-net/petrel/ipam"
)

// lbEnv runs an assigner term on a fake API server and an in-memory
// datastore holding a LoadBalancer pool.
type lbEnv struct {
	kube *fake.Clientset
	ipam *ipam.Client
	stop func()
}

func startTerm(t *testing.T, kube *fake.Clientset, b datastore.Backend) *lbEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := Start(ctx, Options{Client: kube, Node: "n1", Logger: slog.New(slog.DiscardHandler), Advertise: func(Advertisement) {}})
	a := newAssigner(c) // Start made none (no IPAM): drive a term directly, without the Lease
	c.opts.IPAM = ipam.New(b)
	done := make(chan struct{})
	go func() { a.lead(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return &lbEnv{kube: kube, ipam: c.opts.IPAM, stop: stop}
}

func lbPoolBackend(t *testing.T) datastore.Backend {
	b := memory.New()
	o, _ := datastore.New(datastore.KindIPPool)
	p := o.(*datastore.IPPool)
	p.Name, p.Spec.CIDR, p.Spec.BlockSize, p.Spec.AllowedUses = "lb", "192.0.2.0/24", 28, []string{"LoadBalancer"}
	if _, err := b.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return b
}

func lbService(name string, ann map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Annotations: ann},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
	}
}

// ingressOf waits until the Service has n ingress addresses.
func ingressOf(t *testing.T, kube *fake.Clientset, name string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		svc, err := kube.CoreV1().Services("ns").Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && len(svc.Status.LoadBalancer.Ingress) == n {
			var out []string
			for _, in := range svc.Status.LoadBalancer.Ingress {
				out = append(out, in.IP)
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: ingress %v (%v), want %d addresses", name, svc.Status.LoadBalancer.Ingress, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAssignerTerms: a term gives each LoadBalancer Service an address
// (the one it asks for, if any), the next term keeps them, and a Service
// deleted between terms has its address released.
func TestAssignerTerms(t *testing.T) {
	b := lbPoolBackend(t)
	kube := fake.NewClientset(
		lbService("a", nil),
		lbService("b", map[string]string{AnnotationLoadBalancerIPs: `["192.0.2.200"]`}),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: "ns"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}},
	)
	env := startTerm(t, kube, b)
	a := ingressOf(t, kube, "a", 1)
	if got := ingressOf(t, kube, "b", 1); got[0] != "192.0.2.200" {
		t.Errorf("b got %v, want the address it asked for", got)
	}
	if !netip.MustParsePrefix("192.0.2.0/24").Contains(netip.MustParseAddr(a[0])) || a[0] == "192.0.2.200" {
		t.Errorf("a got %v", a)
	}
	env.stop()

	if err := kube.CoreV1().Services("ns").Delete(context.Background(), "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	env = startTerm(t, kube, b)
	if _, err := kube.CoreV1().Services("ns").Create(context.Background(), lbService("c", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := ingressOf(t, kube, "c", 1)
	if again := ingressOf(t, kube, "a", 1); again[0] != a[0] || c[0] == a[0] {
		t.Errorf("second term: a %v (was %v), c %v", again, a, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		held, err := env.ipam.HandlesWithPrefix(context.Background(), handlePrefix)
		if err == nil && len(held) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handles after b's deletion: %v (%v), want a's and c's", held, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	report, err := env.ipam.Check(context.Background())
	if err != nil || !report.OK() {
		t.Errorf("ipam check: %v %v", report, err)
	}
}

// TestAssignerReleasesWhenNoLongerLoadBalancer: a Service that becomes a
// ClusterIP Service loses its address, in IPAM and in its status.
func TestAssignerReleasesWhenNoLongerLoadBalancer(t *testing.T) {
	b := lbPoolBackend(t)
	kube := fake.NewClientset(lbService("a", nil))
	env := startTerm(t, kube, b)
	ingressOf(t, kube, "a", 1)
	svc, _ := kube.CoreV1().Services("ns").Get(context.Background(), "a", metav1.GetOptions{})
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	if _, err := kube.CoreV1().Services("ns").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ingressOf(t, kube, "a", 0)
	if held, _ := env.ipam.HandlesWithPrefix(context.Background(), handlePrefix); len(held) != 0 {
		t.Errorf("handles %v, want none", held)
	}
}
