package services

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/petrel-net/petrel/datastore"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// svc builds a Service; mods change it.
func svc(name string, typ corev1.ServiceType, clusterIPs []string, mods ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.ServiceSpec{Type: typ, ClusterIPs: clusterIPs}}
	if len(clusterIPs) > 0 {
		s.Spec.ClusterIP = clusterIPs[0]
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func local(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

func internalLocal(s *corev1.Service) {
	p := corev1.ServiceInternalTrafficPolicyLocal
	s.Spec.InternalTrafficPolicy = &p
}

func ingress(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}

func externalIPs(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) { s.Spec.ExternalIPs = ips }
}

// ep is one endpoint: "node" (ready), "node!" (not ready), at addr.
func slice(typ discoveryv1.AddressType, eps ...string) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{AddressType: typ}
	for _, e := range eps {
		node, notReady := strings.CutSuffix(e, "!")
		ready := !notReady
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{"192.168.0.1"}, NodeName: &node, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
	}
	return es
}

func TestAdvertisedDecisionTable(t *testing.T) {
	base := Config{
		ClusterIPs:             prefixes("10.96.0.0/12", "fd00:96::/108"),
		ExternalIPs:            prefixes("203.0.113.0/24", "198.51.100.7/32"),
		LoadBalancerIPs:        prefixes("192.0.2.0/24"),
		AggregateLoadBalancers: true,
	}
	cidrs := []string{"10.96.0.0/12", "192.0.2.0/24", "203.0.113.0/24", "fd00:96::/108"}
	noAgg := base
	noAgg.AggregateLoadBalancers = false
	v4 := discoveryv1.AddressTypeIPv4
	lbLocal := svc("lb", corev1.ServiceTypeLoadBalancer, []string{"10.96.0.10"}, local, ingress("192.0.2.5", "100.64.0.1"), externalIPs("203.0.113.9"))

	for _, tt := range []struct {
		name string
		cfg  Config
		node Node
		svcs []*corev1.Service
		eps  map[string][]*discoveryv1.EndpointSlice
		want []string
	}{
		{name: "configured CIDRs only; a single-address range waits for a Service", cfg: base, want: cidrs},
		{name: "nothing configured", cfg: Config{AggregateLoadBalancers: true}, svcs: []*corev1.Service{lbLocal},
			eps: map[string][]*discoveryv1.EndpointSlice{"ns/lb": {slice(v4, "n1")}}},
		{name: "cluster-policy Services are covered by the CIDRs", cfg: base,
			svcs: []*corev1.Service{svc("web", corev1.ServiceTypeLoadBalancer, []string{"10.96.0.11"}, ingress("192.0.2.6"))},
			eps:  map[string][]*discoveryv1.EndpointSlice{"ns/web": {slice(v4, "n1")}}, want: cidrs},
		{name: "externalTrafficPolicy Local with a ready endpoint here: every address in a range", cfg: base,
			svcs: []*corev1.Service{lbLocal}, eps: map[string][]*discoveryv1.EndpointSlice{"ns/lb": {slice(v4, "n2", "n1")}},
			want: append(slices.Clone(cidrs), "10.96.0.10/32", "192.0.2.5/32", "203.0.113.9/32")},
		{name: "Local, endpoint on another node only", cfg: base,
			svcs: []*corev1.Service{lbLocal}, eps: map[string][]*discoveryv1.EndpointSlice{"ns/lb": {slice(v4, "n2")}}, want: cidrs},
		{name: "Local, endpoint here not ready", cfg: base,
			svcs: []*corev1.Service{lbLocal}, eps: map[string][]*discoveryv1.EndpointSlice{"ns/lb": {slice(v4, "n1!")}}, want: cidrs},
		{name: "Local, endpoint here of the other family", cfg: base,
			svcs: []*corev1.Service{lbLocal}, eps: map[string][]*discoveryv1.EndpointSlice{"ns/lb": {slice(discoveryv1.AddressTypeIPv6, "n1")}}, want: cidrs},
		{name: "Local, but the node is excluded from load balancers", cfg: base, node: Node{Name: "n1", Excluded: true},
			svcs: []*corev1.Service{lbLocal}, eps: map[string][]*discoveryv1.EndpointSlice{"ns/lb": {slice(v4, "n1")}}, want: cidrs},
		{name: "internalTrafficPolicy Local: the cluster IP only where an endpoint is", cfg: base,
			svcs: []*corev1.Service{
				svc("dns", corev1.ServiceTypeClusterIP, []string{"10.96.0.53"}, internalLocal),
				svc("far", corev1.ServiceTypeClusterIP, []string{"10.96.0.54"}, internalLocal),
			},
			eps:  map[string][]*discoveryv1.EndpointSlice{"ns/dns": {slice(v4, "n1")}, "ns/far": {slice(v4, "n3")}},
			want: append(slices.Clone(cidrs), "10.96.0.53/32")},
		{name: "dual-stack Local Service: each family on its own endpoints", cfg: base,
			svcs: []*corev1.Service{svc("ds", corev1.ServiceTypeNodePort, []string{"10.96.0.20", "fd00:96::20"}, local)},
			eps:  map[string][]*discoveryv1.EndpointSlice{"ns/ds": {slice(discoveryv1.AddressTypeIPv6, "n1"), slice(v4, "n2")}},
			want: append(slices.Clone(cidrs), "fd00:96::20/128")},
		{name: "headless and ExternalName Services have no address", cfg: base,
			svcs: []*corev1.Service{
				svc("headless", corev1.ServiceTypeClusterIP, []string{corev1.ClusterIPNone}, local),
				svc("ext", corev1.ServiceTypeExternalName, nil, local),
			},
			eps: map[string][]*discoveryv1.EndpointSlice{"ns/headless": {slice(v4, "n1")}, "ns/ext": {slice(v4, "n1")}}, want: cidrs},
		{name: "an external IP configured as a single address: every node, endpoints or not", cfg: base,
			svcs: []*corev1.Service{svc("one", corev1.ServiceTypeClusterIP, []string{"10.96.0.30"}, externalIPs("198.51.100.7"))},
			want: append(slices.Clone(cidrs), "10.96.0.30/32", "198.51.100.7/32")},
		{name: "aggregation Disabled: LoadBalancer addresses one by one while an endpoint is ready anywhere", cfg: noAgg,
			svcs: []*corev1.Service{
				svc("a", corev1.ServiceTypeLoadBalancer, []string{"10.96.0.40"}, ingress("192.0.2.40")),
				svc("b", corev1.ServiceTypeLoadBalancer, []string{"10.96.0.41"}, ingress("192.0.2.41")),
			},
			eps:  map[string][]*discoveryv1.EndpointSlice{"ns/a": {slice(v4, "n3")}, "ns/b": {slice(v4, "n3!")}},
			want: []string{"10.96.0.0/12", "10.96.0.40/32", "192.0.2.40/32", "203.0.113.0/24", "fd00:96::/108"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			node := tt.node
			if node.Name == "" {
				node.Name = "n1"
			}
			got := Advertised(tt.cfg, node, tt.svcs, tt.eps)
			want := prefixes(tt.want...)
			slices.SortFunc(want, comparePrefix)
			if !slices.Equal(got, want) {
				t.Errorf("Advertised = %v\nwant %v", got, want)
			}
		})
	}
}

func TestConfigFrom(t *testing.T) {
	c := &datastore.BGPConfiguration{Spec: datastore.BGPConfigurationSpec{
		ServiceClusterIPs:              []datastore.ServiceIPBlock{{CIDR: "10.96.0.1/12"}},
		ServiceLoadBalancerIPs:         []datastore.ServiceIPBlock{{CIDR: "192.0.2.0/24"}, {CIDR: "bad"}},
		ServiceLoadBalancerAggregation: "Disabled",
	}}
	cfg := ConfigFrom(c)
	if !slices.Equal(cfg.Ranges(), prefixes("10.96.0.0/12", "192.0.2.0/24")) || cfg.AggregateLoadBalancers || !cfg.Enabled() {
		t.Errorf("ConfigFrom = %+v", cfg)
	}
	if cfg := ConfigFrom(nil); cfg.Enabled() || !cfg.AggregateLoadBalancers {
		t.Errorf("ConfigFrom(nil) = %+v", cfg)
	}
}
