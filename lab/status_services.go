package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/petrel-net/petrel/internal/birdshow"
)

// serviceView is the "Service routes" section of lab status: the Service
// ranges of BGPConfiguration default, what each petrel node advertises
// (its API) and, for each BIRD router, every route of its own table
// inside those ranges with the nodes it comes from (birdc).
type serviceView struct {
	ranges     []svcRange
	rangesErr  error
	advertised map[string][]string // by node: the Service prefixes it advertises
	nodes      []string            // the petrel nodes asked, in node order
	routers    []routerServices
	owners     map[netip.Addr]string // "default/web LoadBalancer IP", from the Kubernetes API
}

// svcRange is one configured range: "cluster 10.96.0.0/24".
type svcRange struct {
	kind   string
	prefix netip.Prefix
}

// routerServices is one router's view.
type routerServices struct {
	node   string
	routes map[netip.Prefix][]string // the nodes (or addresses) it has each prefix from
	err    error
}

// gatherServices fills st.services when the lab has Service ranges
// configured or a node advertises a Service prefix; a router whose table
// disagrees with what the nodes advertise is a problem.
func (st *labStatus) gatherServices() {
	sv := &serviceView{advertised: map[string][]string{}}
	sv.ranges, sv.rangesErr = serviceRanges(st.state)
	byAddr := map[string]string{}
	for _, n := range st.state.Nodes {
		for _, a := range []string{n.Addr, n.Addr6} {
			if a != "" {
				byAddr[hostOf(a)] = n.Name
			}
		}
		if (n.Role != "node" && n.Role != RoleKubeNode) || n.Socket == "" {
			continue
		}
		sv.nodes = append(sv.nodes, n.Name)
		if ps, err := servicePrefixes(n.Socket); err == nil {
			sv.advertised[n.Name] = ps
		}
	}
	anyAdvertised := false
	for _, ps := range sv.advertised {
		anyAdvertised = anyAdvertised || len(ps) > 0
	}
	if len(sv.ranges) == 0 && !anyAdvertised {
		return // no Services in this lab
	}
	st.services = sv
	sv.owners = serviceOwners(st.state)
	for _, n := range st.state.Nodes {
		if n.Role != "bird" || n.Socket == "" {
			continue
		}
		r := routerServices{node: n.Name, routes: map[netip.Prefix][]string{}}
		out, err := run("birdc", "-s", n.Socket, "show", "route")
		if err != nil {
			r.err = err
			st.problem("%s: birdc: %v", n.Name, err)
		}
		for p, hops := range birdshow.Routes(out) {
			prefix, err := netip.ParsePrefix(p)
			if err != nil || !sv.isService(prefix) {
				continue
			}
			for _, h := range hops {
				if name, ok := byAddr[h]; ok {
					h = name
				}
				r.routes[prefix] = append(r.routes[prefix], h)
			}
			slices.Sort(r.routes[prefix])
		}
		if err == nil {
			st.compareServices(r)
		}
		sv.routers = append(sv.routers, r)
	}
}

// isService reports whether p lies inside a configured Service range or
// one a node advertises.
func (sv *serviceView) isService(p netip.Prefix) bool {
	for _, r := range sv.ranges {
		if r.prefix.Bits() <= p.Bits() && r.prefix.Contains(p.Addr()) {
			return true
		}
	}
	for _, ps := range sv.advertised {
		for _, s := range ps {
			if a, err := netip.ParsePrefix(s); err == nil && a.Bits() <= p.Bits() && a.Contains(p.Addr()) {
				return true
			}
		}
	}
	return false
}

// advertisers are, by prefix, the petrel nodes that advertise it, sorted.
func (sv *serviceView) advertisers() map[netip.Prefix][]string {
	by := map[netip.Prefix][]string{}
	for _, node := range sv.nodes {
		for _, s := range sv.advertised[node] {
			if p, err := netip.ParsePrefix(s); err == nil {
				by[p] = append(by[p], node)
			}
		}
	}
	for p := range by {
		slices.Sort(by[p])
	}
	return by
}

// compareServices notes a problem for every Service prefix the router has
// from other nodes than those that advertise it (every petrel node peers
// with every lab router).
func (st *labStatus) compareServices(r routerServices) {
	want := st.services.advertisers()
	for _, p := range sortedPrefixes(want, r.routes) {
		if !slices.Equal(r.routes[p], want[p]) {
			st.problem("%s: Service prefix %s from %s, but advertised by %s", r.node, p, listOrNone(r.routes[p]), listOrNone(want[p]))
		}
	}
}

// sortedPrefixes is the union of the maps' keys, by address then length.
func sortedPrefixes(ms ...map[netip.Prefix][]string) []netip.Prefix {
	var ps []netip.Prefix
	for _, m := range ms {
		for p := range m {
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return ps
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "no node"
	}
	return strings.Join(s, ", ")
}

// serviceRanges reads the Service ranges of BGPConfiguration default from
// the lab's datastore (none when it does not exist).
func serviceRanges(s *State) ([]svcRange, error) {
	ds := s.datastoreNode()
	if ds == nil {
		return nil, nil
	}
	out, err := s.petrelCmd(ds.NS, nil, "get", "bgpconfigurations", "default", "-o", "json")
	if err != nil {
		if strings.Contains(out, "not found") || strings.Contains(out, "NotFound") {
			return nil, nil
		}
		return nil, fmt.Errorf("BGPConfiguration default: %w", err)
	}
	type cidrs []struct {
		CIDR string `json:"cidr"`
	}
	var cfg struct {
		Spec struct {
			Cluster      cidrs `json:"serviceClusterIPs"`
			External     cidrs `json:"serviceExternalIPs"`
			LoadBalancer cidrs `json:"serviceLoadBalancerIPs"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		return nil, fmt.Errorf("BGPConfiguration default: %w", err)
	}
	var ranges []svcRange
	for _, k := range []struct {
		kind  string
		cidrs cidrs
	}{{"cluster", cfg.Spec.Cluster}, {"external", cfg.Spec.External}, {"LoadBalancer", cfg.Spec.LoadBalancer}} {
		for _, c := range k.cidrs {
			if p, err := netip.ParsePrefix(c.CIDR); err == nil {
				ranges = append(ranges, svcRange{k.kind, p.Masked()})
			}
		}
	}
	return ranges, nil
}

// serviceOwners names the Service behind each address the Kubernetes API
// knows of (nil without one): cluster, external and LoadBalancer IPs.
func serviceOwners(s *State) map[netip.Addr]string {
	if _, _, err := s.kubeAccess(); err != nil {
		return nil
	}
	c, err := KubeClient(s)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	owners := map[netip.Addr]string{}
	add := func(ip, what string) {
		if a, err := netip.ParseAddr(ip); err == nil {
			owners[a] = what
		}
	}
	for _, svc := range list.Items {
		name := svc.Namespace + "/" + svc.Name
		for _, ip := range svc.Spec.ClusterIPs {
			add(ip, name+" cluster IP")
		}
		for _, ip := range svc.Spec.ExternalIPs {
			add(ip, name+" external IP")
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			add(in.IP, name+" LoadBalancer IP")
		}
	}
	return owners
}

// what says what a Service prefix stands for: a configured range, or a
// Service's address.
func (sv *serviceView) what(p netip.Prefix) string {
	for _, r := range sv.ranges {
		if r.prefix == p {
			return r.kind + " range"
		}
	}
	if p.IsSingleIP() {
		if o, ok := sv.owners[p.Addr()]; ok {
			return o
		}
	}
	return "-"
}

func (sv *serviceView) render(w io.Writer) {
	var rs []string
	for _, r := range sv.ranges {
		rs = append(rs, r.kind+" "+r.prefix.String())
	}
	switch {
	case sv.rangesErr != nil:
		fmt.Fprintf(w, "Service routes (ranges: %v):\n", sv.rangesErr)
	case len(rs) == 0:
		fmt.Fprintln(w, "Service routes (no ranges in BGPConfiguration default):")
	default:
		fmt.Fprintf(w, "Service routes (BGPConfiguration default: %s):\n", strings.Join(rs, ", "))
	}
	for _, r := range sv.routers {
		switch {
		case r.err != nil:
			fmt.Fprintf(w, "%s (BIRD's table): %v\n", r.node, r.err)
			continue
		case len(r.routes) == 0:
			fmt.Fprintf(w, "%s (BIRD's table): none\n", r.node)
			continue
		}
		fmt.Fprintf(w, "%s (BIRD's table):\n", r.node)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PREFIX\tFROM\tWHAT")
		for _, p := range sortedPrefixes(r.routes) {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", p, strings.Join(r.routes[p], ", "), sv.what(p))
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "Advertised by the petrel nodes:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tSERVICE PREFIXES")
	for _, n := range sv.nodes {
		ps, ok := sv.advertised[n]
		line := strings.Join(ps, ", ")
		switch {
		case !ok:
			line = "(not answering)"
		case len(ps) == 0:
			line = "none"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", n, line)
	}
	tw.Flush()
}
