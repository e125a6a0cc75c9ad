package services

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseRequest(t *testing.T) {
	lbPools := map[string]netip.Prefix{"lb-v4": netip.MustParsePrefix("192.0.2.0/24")}
	mk := func(ann map[string]string, mod ...func(*corev1.Service)) *corev1.Service {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns", Annotations: ann}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
		for _, m := range mod {
			m(s)
		}
		return s
	}
	addr := netip.MustParseAddr
	for _, tt := range []struct {
		name    string
		svc     *corev1.Service
		want    lbRequest
		wantErr string
		keep    []string // held addresses the request keeps
		drop    []string
	}{
		{name: "nothing asked: one IPv4 address from any pool", svc: mk(nil), want: lbRequest{v4: true},
			keep: []string{"192.0.2.9"}, drop: []string{"2001:db8::1"}},
		{name: "dual-stack families", svc: mk(nil, func(s *corev1.Service) {
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
		}),
			want: lbRequest{v4: true, v6: true}, keep: []string{"192.0.2.9", "2001:db8::1"}},
		{name: "annotation addresses", svc: mk(map[string]string{AnnotationLoadBalancerIPs: `["192.0.2.7","2001:db8::7"]`}),
			want: lbRequest{addrs: []netip.Addr{addr("192.0.2.7"), addr("2001:db8::7")}, v4: true, v6: true},
			keep: []string{"192.0.2.7"}, drop: []string{"192.0.2.8"}},
		{name: "spec.loadBalancerIP", svc: mk(nil, func(s *corev1.Service) { s.Spec.LoadBalancerIP = "192.0.2.33" }),
			want: lbRequest{addrs: []netip.Addr{addr("192.0.2.33")}, v4: true}},
		{name: "the annotation wins over spec.loadBalancerIP", svc: mk(map[string]string{AnnotationLoadBalancerIPs: `["192.0.2.7"]`}, func(s *corev1.Service) { s.Spec.LoadBalancerIP = "192.0.2.33" }),
			want: lbRequest{addrs: []netip.Addr{addr("192.0.2.7")}, v4: true}},
		{name: "pools by CIDR and by name", svc: mk(map[string]string{AnnotationIPv4Pools: `["lb-v4","198.51.100.0/24"]`}),
			want: lbRequest{pools: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.51.100.0/24")}, v4: true},
			keep: []string{"198.51.100.3"}, drop: []string{"203.0.113.1"}},
		{name: "two addresses of one family", svc: mk(map[string]string{AnnotationLoadBalancerIPs: `["192.0.2.7","192.0.2.8"]`}), wantErr: "at most one address per family"},
		{name: "not an address", svc: mk(map[string]string{AnnotationLoadBalancerIPs: `["nope"]`}), wantErr: AnnotationLoadBalancerIPs},
		{name: "unknown pool", svc: mk(map[string]string{AnnotationIPv4Pools: `["nope"]`}), wantErr: "neither a CIDR nor a LoadBalancer IPPool"},
		{name: "IPv6 pool in the IPv4 annotation", svc: mk(map[string]string{AnnotationIPv4Pools: `["2001:db8::/64"]`}), wantErr: "wrong address family"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest(tt.svc, lbPools)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			slices.SortFunc(got.pools, comparePrefix)
			if err != nil || !slices.Equal(got.addrs, tt.want.addrs) || !slices.Equal(got.pools, tt.want.pools) || got.v4 != tt.want.v4 || got.v6 != tt.want.v6 {
				t.Fatalf("parseRequest = %+v, %v\nwant %+v", got, err, tt.want)
			}
			for _, a := range tt.keep {
				if !got.keeps(addr(a)) {
					t.Errorf("%s dropped, want kept", a)
				}
			}
			for _, a := range tt.drop {
				if got.keeps(addr(a)) {
					t.Errorf("%s kept, want dropped", a)
				}
			}
		})
	}
}

func TestHandleIsCalicos(t *testing.T) {
	a := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: "1234"}}
	b := a.DeepCopy()
	b.UID = "5678"
	ha, hb := lbHandle(a), lbHandle(b)
	if !strings.HasPrefix(ha, "lb-") || ha == hb || strings.ContainsAny(ha[3:], "-_.") || len(ha) > 3+43 || len(ha) < 30 {
		t.Errorf("handles %q, %q: want lb- and up to 43 hash characters without -_., one per UID", ha, hb)
	}
}
