package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/petrel-net/petrel/datastore"
	kubestore "github.com/petrel-net/petrel/datastore/kubernetes"
	"github.com/petrel-net/petrel/e2e/harness"
	"github.com/petrel-net/petrel/internal/testenv/kubeapi"
	"github.com/petrel-net/petrel/ipam"
)

// Addresses of the Service lab: the kube-apiserver's Service range (see
// kubeapi), a LoadBalancer pool, the ToR.
const (
	svcClusterCIDR = "10.96.0.0/24"
	svcLBCIDR      = "192.0.2.0/24"
	svcToR         = "10.0.0.200"
)

// serviceLab is three petrel nodes on the kubernetes datastore of a real
// kube-apiserver, with a BIRD ToR (AS 65000) peering with each over eBGP.
type serviceLab struct {
	*clusterLab
	env  *kubeapi.Env
	kube kubernetes.Interface
	tor  *harness.Bird
}

// kubeAPI starts a kube-apiserver for a test run as root (skipped with
// -short) and returns it with its host:port, which nodes reach through
// ForwardHostLoopback.
func kubeAPI(t *testing.T) (*kubeapi.Env, string) {
	harness.RequireRoot(t)
	if testing.Short() {
		t.Skip("needs a kube-apiserver")
	}
	env := kubeapi.Start(t)
	host, err := url.Parse(env.RestConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	return env, host.Host
}

func kubeClient(t *testing.T, env *kubeapi.Env) kubernetes.Interface {
	kube, err := kubernetes.NewForConfig(env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	return kube
}

func newServiceLab(t *testing.T) *serviceLab {
	env, apiHost := kubeAPI(t)
	kube := kubeClient(t, env)
	s := &serviceLab{clusterLab: &clusterLab{lab: harness.New(t)}, env: env, kube: kube}
	s.hub = s.lab.Node("switch")
	s.lab.Bridge(s.hub, "br0", "10.0.0.100/24")
	kubePut(t, env, []storedObject{
		{kind: datastore.KindIPPool, name: "pods", spec: map[string]any{"cidr": "192.168.0.0/16", "vxlanMode": "Never", "ipipMode": "Never"}},
		{kind: datastore.KindIPPool, name: "lb", spec: map[string]any{"cidr": svcLBCIDR, "allowedUses": []any{"LoadBalancer"}}},
		{kind: datastore.KindBGPConfiguration, name: "default", spec: map[string]any{
			"serviceClusterIPs": []any{map[string]any{"cidr": svcClusterCIDR}}, "serviceLoadBalancerIPs": []any{map[string]any{"cidr": svcLBCIDR}}}},
		{kind: datastore.KindBGPPeer, name: "tor", spec: map[string]any{"peerIP": svcToR, "asNumber": 65000}},
	})
	tor := s.lab.Node("tor")
	s.lab.Attach(s.hub, "br0", tor, "eth1", svcToR+"/24")
	var conf strings.Builder
	conf.WriteString("log stderr all;\nrouter id " + svcToR + ";\nprotocol device { scan time 1; }\n" +
		"protocol kernel { ipv4 { export all; }; merge paths on; }\n")
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&conf, "protocol bgp node%d {\n  local as 65000;\n  neighbor 10.0.0.%d as 64512;\n"+
			"  connect retry time 1;\n  connect delay time 1;\n  error wait time 1, 5;\n  ipv4 { import all; export none; };\n}\n", i, i)
	}
	s.tor = harness.StartBird(t, tor, conf.String())
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("node%d", i)
		n := s.lab.Node(name)
		n.ForwardHostLoopback(t, apiHost)
		s.lab.Attach(s.hub, "br0", n, "eth1", fmt.Sprintf("10.0.0.%d/24", i))
		s.nodes = append(s.nodes, startPetrelFromDatastore(t, s.lab, n, "NODENAME="+name, fmt.Sprintf("IP=10.0.0.%d", i),
			"DATASTORE_TYPE=kubernetes", "KUBECONFIG="+env.Kubeconfig))
	}
	return s
}

// waitToR waits until the ToR reaches prefix through exactly the nodes
// listed (none: the prefix is withdrawn) and returns how long it took.
func (s *serviceLab) waitToR(t *testing.T, timeout time.Duration, prefix string, nodes ...int) time.Duration {
	t.Helper()
	var want []string
	for _, i := range nodes {
		want = append(want, fmt.Sprintf("10.0.0.%d", i))
	}
	return waitBirdHops(t, s.tor, timeout, prefix, want...)
}

// birdHops is a BIRD's next hops for prefix, sorted (none: not there).
func birdHops(b *harness.Bird, prefix string) ([]string, error) {
	routes, err := b.Routes()
	if err != nil {
		return nil, err
	}
	hops := slices.Clone(routes[prefix])
	slices.Sort(hops)
	return hops, nil
}

// waitBirdHops waits until BIRD b reaches prefix through exactly the
// next hops listed, sorted (none: the prefix is withdrawn), and returns
// how long it took.
func waitBirdHops(t *testing.T, b *harness.Bird, timeout time.Duration, prefix string, want ...string) time.Duration {
	t.Helper()
	start := time.Now()
	harness.Eventually(t, timeout, 20*time.Millisecond, func() error {
		hops, err := birdHops(b, prefix)
		if err != nil {
			return err
		}
		if !slices.Equal(hops, want) {
			return fmt.Errorf("%s reaches %s via %v, want %v", b.Socket, prefix, hops, want)
		}
		return nil
	}, "route for %s via %v", prefix, want)
	return time.Since(start)
}

func endpointSlice(name string, nodes ...string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: name + "-1", Namespace: "default", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		ready := true
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{fmt.Sprintf("192.168.%d.%d", i, 10+i)}, NodeName: &n, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return es
}

// TestServiceAdvertisement is issue 14's scenario on a real kube-apiserver
// with three nodes and a BIRD ToR: the cluster CIDR from every node (ECMP
// at the ToR), a Local Service from exactly the nodes with a ready
// endpoint, following an endpoint that moves within a second, withdrawn
// everywhere with the Service; no node programs a Service route. Then
// LoadBalancer addresses: 50 Services created at once with two agents
// get 50 distinct addresses, kept across a restart of both agents, and
// all released with the Services.
func TestServiceAdvertisement(t *testing.T) {
	s := newServiceLab(t)
	ctx := t.Context()

	t.Run("cluster CIDR and Local Services", func(t *testing.T) {
		s.waitToR(t, 60*time.Second, svcClusterCIDR, 1, 2, 3)
		s.waitToR(t, 5*time.Second, svcLBCIDR, 1, 2, 3)
		// ECMP: BIRD merged the three paths into one kernel route.
		harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
			out, err := s.tor.Node.Run("ip", "route", "show", svcClusterCIDR)
			if n := strings.Count(out, "nexthop via"); err != nil || n != 3 {
				return fmt.Errorf("ToR kernel route %q (%v): %d next hops, want 3", out, err, n)
			}
			return nil
		}, "ECMP route at the ToR")
		if out, err := s.tor.Cmd("show", "route", "all", "for", svcClusterCIDR); err == nil {
			t.Logf("birdc show route all for %s:\n%s", svcClusterCIDR, out)
		}

		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, ClusterIP: "10.96.0.50", ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
				Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
		}
		if _, err := s.kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		es, err := s.kube.DiscoveryV1().EndpointSlices("default").Create(ctx, endpointSlice("web", "node1", "node2"), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		const host = "10.96.0.50/32"
		s.waitToR(t, 10*time.Second, host, 1, 2)

		// Move node1's endpoint to node3.
		moved := endpointSlice("web", "node3", "node2")
		moved.ResourceVersion = es.ResourceVersion
		if _, err := s.kube.DiscoveryV1().EndpointSlices("default").Update(ctx, moved, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		took := s.waitToR(t, 5*time.Second, host, 2, 3)
		t.Logf("the ToR followed the moved endpoint in %v", took.Round(time.Millisecond))
		if took > time.Second {
			t.Errorf("the advertisement followed the endpoint after %v, want within a second", took)
		}
		out, err := s.nodes[2].Run(petrelBin, "status", "--socket", s.nodes[2].socket)
		if err != nil || !strings.Contains(out, "Service prefixes advertised") || !strings.Contains(out, host) {
			t.Errorf("node3's petrel status does not show %s (%v):\n%s", host, err, out)
		}
		for i, n := range s.nodes {
			for p := range fib(t, n.Node) {
				if pp := netip.MustParsePrefix(p); netip.MustParsePrefix(svcClusterCIDR).Overlaps(pp) || netip.MustParsePrefix(svcLBCIDR).Overlaps(pp) {
					t.Errorf("node%d programmed a Service route: %s", i+1, p)
				}
			}
		}

		if err := s.kube.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		s.waitToR(t, 5*time.Second, host)
		if hops, _ := birdHops(s.tor, svcClusterCIDR); len(hops) != 3 {
			t.Errorf("cluster CIDR via %v after the delete, want all three nodes", hops)
		}
	})

	t.Run("LoadBalancer addresses", func(t *testing.T) {
		// Two node agents: node3's stops.
		if err := s.nodes[2].proc.Stop(10 * time.Second); err != nil {
			t.Log(err)
		}
		agents := s.nodes[:2]
		const n = 50
		t0 := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("lb-%02d", i), Namespace: "default"},
					Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
				}
				_, err := s.kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		first := s.waitLoadBalancers(t, n, 120*time.Second)
		t.Logf("%d Services got %d distinct addresses in %v", n, n, time.Since(t0).Round(time.Millisecond))

		// Restart both agents: every address stays.
		for _, p := range agents {
			if err := p.proc.Stop(10 * time.Second); err != nil {
				t.Log(err)
			}
			p.start()
		}
		probe := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}}}
		if _, err := s.kube.CoreV1().Services("default").Create(ctx, probe, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		after := s.waitLoadBalancers(t, n+1, 60*time.Second) // an assigner is at work again
		time.Sleep(2 * time.Second)                          // and has been through every Service
		after = s.waitLoadBalancers(t, n+1, 10*time.Second)
		for name, addr := range first {
			if after[name] != addr {
				t.Errorf("%s: address %s before the restart, %s after", name, addr, after[name])
			}
		}
		s.checkIPAM(t, n+1)

		// Delete them all: the pool empties.
		for name := range after {
			if err := s.kube.CoreV1().Services("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		harness.Eventually(t, 60*time.Second, 250*time.Millisecond, func() error { return s.lbPoolUse(t, 0) }, "LoadBalancer pool empty")
		s.checkIPAM(t, 0)
	})
}

// waitLoadBalancers waits until want LoadBalancer Services each have one
// distinct address from the pool, and returns them by Service name.
func (s *serviceLab) waitLoadBalancers(t *testing.T, want int, timeout time.Duration) map[string]string {
	t.Helper()
	pool := netip.MustParsePrefix(svcLBCIDR)
	var got map[string]string
	harness.Eventually(t, timeout, 250*time.Millisecond, func() error {
		list, err := s.kube.CoreV1().Services("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		got = map[string]string{}
		seen := map[string]string{}
		for _, svc := range list.Items {
			if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
				continue
			}
			in := svc.Status.LoadBalancer.Ingress
			if len(in) != 1 {
				return fmt.Errorf("%s has %d addresses", svc.Name, len(in))
			}
			a, err := netip.ParseAddr(in[0].IP)
			if err != nil || !pool.Contains(a) {
				return fmt.Errorf("%s has %q, not from the LoadBalancer pool", svc.Name, in[0].IP)
			}
			if other, dup := seen[in[0].IP]; dup {
				t.Fatalf("%s handed out twice: %s and %s", in[0].IP, other, svc.Name)
			}
			seen[in[0].IP], got[svc.Name] = svc.Name, in[0].IP
		}
		if len(got) != want {
			return fmt.Errorf("%d LoadBalancer Services with an address, want %d", len(got), want)
		}
		return nil
	}, "%d LoadBalancer Services with distinct addresses", want)
	return got
}

// lbPoolUse checks the addresses in use in the LoadBalancer pool.
func (s *serviceLab) lbPoolUse(t *testing.T, want int) error {
	b, err := kubestore.NewForConfig(s.env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	usage, err := ipam.New(b).Usage(context.Background())
	if err != nil {
		return err
	}
	for _, u := range usage {
		if u.CIDR.String() == svcLBCIDR {
			if u.Used != want {
				return fmt.Errorf("LoadBalancer pool: %d addresses in use, want %d", u.Used, want)
			}
			return nil
		}
	}
	return fmt.Errorf("LoadBalancer pool not in the usage report %+v", usage)
}

// checkIPAM runs `petrel ipam check` against the API server and checks
// the pool holds want addresses.
func (s *serviceLab) checkIPAM(t *testing.T, want int) {
	t.Helper()
	if err := s.lbPoolUse(t, want); err != nil {
		t.Error(err)
	}
	cmd := exec.Command(petrelBin, "ipam", "check")
	cmd.Env = []string{"DATASTORE_TYPE=kubernetes", "KUBECONFIG=" + s.env.Kubeconfig}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("petrel ipam check: %v\n%s", err, out)
	}
}

// TestServiceAdvertisementWithEtcd: on the etcd datastore the Services
// still come from the Kubernetes API (KUBECONFIG), as calico-node's do. A
// Local Service is advertised by the node with its endpoint only; the
// other node learns that route over the mesh but programs no route inside
// the Service range.
func TestServiceAdvertisementWithEtcd(t *testing.T) {
	env, apiHost := kubeAPI(t)
	kube := kubeClient(t, env)
	c := newClusterLab(t, 0, seedPoolNoVXLAN)
	c.apply(t, `apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {serviceClusterIPs: [{cidr: `+svcClusterCIDR+`}]}
`)
	for i := 1; i <= 2; i++ {
		n := c.lab.Node(fmt.Sprintf("node%d", i))
		n.ForwardHostLoopback(t, apiHost)
		c.lab.Attach(c.hub, "br0", n, "eth1", fmt.Sprintf("10.0.0.%d/24", i))
		c.nodes = append(c.nodes, startPetrelFromDatastore(t, c.lab, n, "NODENAME="+n.Name, fmt.Sprintf("IP=10.0.0.%d", i),
			"DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+etcdURL, "KUBECONFIG="+env.Kubeconfig))
	}
	c.waitSessions(t, map[int][]string{1: {"10.0.0.2"}, 2: {"10.0.0.1"}})

	ctx := t.Context()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: "10.96.0.60", InternalTrafficPolicy: ptrTo(corev1.ServiceInternalTrafficPolicyLocal),
			Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	if _, err := kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.DiscoveryV1().EndpointSlices("default").Create(ctx, endpointSlice("web", "node1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const host32 = "10.96.0.60/32"
	hasRoute(t, "node2", c.nodes[1].Routes, host32, "10.0.0.1")
	hasRoute(t, "node2", c.nodes[1].Routes, svcClusterCIDR, "")
	if rs, err := c.nodes[0].Routes(); err != nil || len(rs[host32]) != 1 {
		t.Errorf("node1's RIB for %s: %v (%v), want its own route only", host32, rs[host32], err)
	}
	for p := range fib(t, c.nodes[1].Node) {
		if netip.MustParsePrefix(svcClusterCIDR).Overlaps(netip.MustParsePrefix(p)) {
			t.Errorf("node2 programmed the Service route %s", p)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
