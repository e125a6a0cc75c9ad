package services

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Calico's annotations for a Service's LoadBalancer addresses: JSON lists
// of addresses (at most one per family), or of pools (CIDRs or IPPool
// names) to take them from.
const (
	AnnotationLoadBalancerIPs = "projectcalico.org/loadBalancerIPs"
	AnnotationIPv4Pools       = "projectcalico.org/ipv4pools"
	AnnotationIPv6Pools       = "projectcalico.org/ipv6pools"
)

// managed reports whether petrel assigns svc's LoadBalancer addresses: a
// LoadBalancer Service that names no other loadBalancerClass.
func managed(svc *corev1.Service) bool {
	return svc.Spec.Type == corev1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil
}

// lbHandle is the IPAM handle of svc's LoadBalancer addresses, as Calico's
// kube-controllers make it ("lb-" and a hash of name, namespace and UID):
// a cluster moving between the two keeps its addresses, and a Service
// re-created under the same name gets a new handle.
func lbHandle(svc *corev1.Service) string {
	sum := sha256.Sum256([]byte(strings.ToLower(fmt.Sprintf("%s-%s-%s", svc.Name, svc.Namespace, svc.UID))))
	h := strings.NewReplacer("-", "", "_", "", ".", "").Replace(base64.RawURLEncoding.EncodeToString(sum[:]))
	return "lb-" + h
}

// lbRequest is what a Service asks for.
type lbRequest struct {
	addrs []netip.Addr   // these addresses exactly (annotation, else spec.loadBalancerIP)
	pools []netip.Prefix // else one address per family from these pools (nil: any LoadBalancer pool)
	v4    bool           // else an address of each family the Service has
	v6    bool
}

// parseRequest reads svc's request; lbPools are the LoadBalancer pools by
// name, for pool annotations that name one.
func parseRequest(svc *corev1.Service, lbPools map[string]netip.Prefix) (lbRequest, error) {
	var r lbRequest
	if s := svc.Annotations[AnnotationLoadBalancerIPs]; s != "" {
		var list []string
		if err := json.Unmarshal([]byte(s), &list); err != nil {
			return r, fmt.Errorf("annotation %s: %w", AnnotationLoadBalancerIPs, err)
		}
		for _, ip := range list {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				return r, fmt.Errorf("annotation %s: %w", AnnotationLoadBalancerIPs, err)
			}
			r.addrs = append(r.addrs, a.Unmap())
		}
	} else if a, err := netip.ParseAddr(svc.Spec.LoadBalancerIP); err == nil {
		r.addrs = []netip.Addr{a.Unmap()}
	}
	for _, a := range r.addrs {
		if (a.Is4() && r.v4) || (a.Is6() && r.v6) {
			return r, fmt.Errorf("annotation %s: at most one address per family", AnnotationLoadBalancerIPs)
		}
		r.v4, r.v6 = r.v4 || a.Is4(), r.v6 || a.Is6()
	}
	if len(r.addrs) > 0 {
		return r, nil
	}
	for _, f := range svc.Spec.IPFamilies {
		r.v4, r.v6 = r.v4 || f == corev1.IPv4Protocol, r.v6 || f == corev1.IPv6Protocol
	}
	if !r.v4 && !r.v6 {
		r.v4 = true
	}
	for ann, v6 := range map[string]bool{AnnotationIPv4Pools: false, AnnotationIPv6Pools: true} {
		pools, err := annotatedPools(svc.Annotations[ann], lbPools, v6)
		if err != nil {
			return r, fmt.Errorf("annotation %s: %w", ann, err)
		}
		r.pools = append(r.pools, pools...)
	}
	return r, nil
}

// annotatedPools resolves a pool annotation's entries (CIDRs or names of
// LoadBalancer pools) of one family.
func annotatedPools(s string, lbPools map[string]netip.Prefix, v6 bool) ([]netip.Prefix, error) {
	if s == "" {
		return nil, nil
	}
	var list []string
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, entry := range list {
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			var ok bool
			if p, ok = lbPools[entry]; !ok {
				return nil, fmt.Errorf("%q is neither a CIDR nor a LoadBalancer IPPool", entry)
			}
		}
		if p.Addr().Is6() != v6 {
			return nil, fmt.Errorf("%s is of the wrong address family", p)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// keeps reports whether a held address still answers the request.
func (r lbRequest) keeps(a netip.Addr) bool {
	switch {
	case len(r.addrs) > 0:
		return slices.Contains(r.addrs, a)
	case (a.Is4() && !r.v4) || (a.Is6() && !r.v6):
		return false
	case len(r.pools) > 0:
		return slices.ContainsFunc(r.pools, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	return true
}
