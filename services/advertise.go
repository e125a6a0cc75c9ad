package services

import (
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// ExcludeLabel on a Node stops it advertising per-Service prefixes, as in
// Calico (the configured CIDRs still go out).
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// Node is what the decision needs to know about this node.
type Node struct {
	Name     string
	Excluded bool // ExcludeLabel is "true"
}

// Advertised is the set of prefixes node advertises, sorted: every
// configured CIDR (the LoadBalancer ones only when aggregated; single
// addresses only through a Service that uses them, as Calico), plus the
// host prefixes of the Services that need one from this node. endpoints
// holds each Service's EndpointSlices by "namespace/name".
func Advertised(cfg Config, node Node, svcs []*corev1.Service, endpoints map[string][]*discoveryv1.EndpointSlice) []netip.Prefix {
	set := map[netip.Prefix]bool{}
	ranges := append(slices.Clone(cfg.ClusterIPs), cfg.ExternalIPs...)
	if cfg.AggregateLoadBalancers {
		ranges = append(ranges, cfg.LoadBalancerIPs...)
	}
	for _, r := range ranges {
		if !isHost(r) {
			set[r] = true
		}
	}
	if !node.Excluded {
		for _, svc := range svcs {
			for _, p := range serviceRoutes(cfg, node.Name, svc, endpoints[svc.Namespace+"/"+svc.Name]) {
				set[p] = true
			}
		}
	}
	out := make([]netip.Prefix, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// route is one address of a Service that could be advertised.
type route struct {
	prefix    netip.Prefix
	clusterIP bool
}

// serviceRoutes are the host prefixes of svc this node advertises.
func serviceRoutes(cfg Config, node string, svc *corev1.Service, eps []*discoveryv1.EndpointSlice) []netip.Prefix {
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		return nil // ExternalName
	}
	if svc.Spec.ClusterIP == "" || svc.Spec.ClusterIP == corev1.ClusterIPNone {
		return nil // headless: no address of its own
	}
	everywhere := clusterPolicyHostRoutes(cfg, svc, eps)
	var out []netip.Prefix
	for _, r := range candidates(cfg, svc) {
		localOnly := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal ||
			(r.clusterIP && svc.Spec.InternalTrafficPolicy != nil && *svc.Spec.InternalTrafficPolicy == corev1.ServiceInternalTrafficPolicyLocal)
		switch {
		case localOnly:
			if hasReadyEndpoint(eps, node, r.prefix.Addr().Is6()) {
				out = append(out, r.prefix)
			}
		case everywhere[r.prefix.Addr().Is6()]:
			out = append(out, r.prefix)
		}
	}
	return out
}

// clusterPolicyHostRoutes says, per family (true: IPv6), whether every
// node advertises the host prefixes of a Service whose traffic may go to
// any node. The configured CIDRs cover such a Service already, except (as
// Calico) when it uses an address configured as a single /32 (/128), or
// when LoadBalancer CIDRs are not aggregated; then it is advertised by all
// nodes while it has a ready endpoint anywhere (the single-address case
// regardless).
func clusterPolicyHostRoutes(cfg Config, svc *corev1.Service, eps []*discoveryv1.EndpointSlice) map[bool]bool {
	single := slices.ContainsFunc(svc.Spec.ExternalIPs, func(s string) bool { return inSingle(cfg.ExternalIPs, s) })
	isLB := svc.Spec.Type == corev1.ServiceTypeLoadBalancer
	if isLB {
		single = single || inSingle(cfg.LoadBalancerIPs, svc.Spec.LoadBalancerIP) ||
			slices.ContainsFunc(svc.Status.LoadBalancer.Ingress, func(in corev1.LoadBalancerIngress) bool { return inSingle(cfg.LoadBalancerIPs, in.IP) })
	}
	out := map[bool]bool{}
	for _, v6 := range []bool{false, true} {
		out[v6] = single || (isLB && !cfg.AggregateLoadBalancers && hasReadyEndpoint(eps, "", v6))
	}
	return out
}

// candidates are svc's addresses inside the configured ranges, as host
// prefixes: cluster IPs, external IPs and LoadBalancer ingress IPs.
func candidates(cfg Config, svc *corev1.Service) []route {
	var out []route
	add := func(ranges []netip.Prefix, s string, clusterIP bool) {
		if a, err := netip.ParseAddr(s); err == nil && slices.ContainsFunc(ranges, func(r netip.Prefix) bool { return r.Contains(a.Unmap()) }) {
			out = append(out, route{netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), clusterIP})
		}
	}
	clusterIPs := svc.Spec.ClusterIPs
	if len(clusterIPs) == 0 {
		clusterIPs = []string{svc.Spec.ClusterIP}
	}
	for _, ip := range clusterIPs {
		add(cfg.ClusterIPs, ip, true)
	}
	for _, ip := range svc.Spec.ExternalIPs {
		add(cfg.ExternalIPs, ip, false)
	}
	if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		for _, in := range svc.Status.LoadBalancer.Ingress {
			add(cfg.LoadBalancerIPs, in.IP, false)
		}
	}
	return out
}

// hasReadyEndpoint reports whether the slices hold a ready endpoint of the
// family on node ("" = on any node). A nil ready condition is ready, as
// the EndpointSlice API defines it.
func hasReadyEndpoint(eps []*discoveryv1.EndpointSlice, node string, v6 bool) bool {
	want := discoveryv1.AddressTypeIPv4
	if v6 {
		want = discoveryv1.AddressTypeIPv6
	}
	for _, es := range eps {
		if es.AddressType != want {
			continue
		}
		for _, e := range es.Endpoints {
			ready := e.Conditions.Ready == nil || *e.Conditions.Ready
			onNode := node == "" || (e.NodeName != nil && *e.NodeName == node)
			if ready && onNode {
				return true
			}
		}
	}
	return false
}

// inSingle reports whether address s is configured as a single-address
// range.
func inSingle(ranges []netip.Prefix, s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && slices.ContainsFunc(ranges, func(r netip.Prefix) bool { return isHost(r) && r.Contains(a.Unmap()) })
}

func isHost(p netip.Prefix) bool { return p.Bits() == p.Addr().BitLen() }

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}
