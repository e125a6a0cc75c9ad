package daemon

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/ipam"
	"github.com/petrel-net/petrel/kernelsync"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// This file assembles explain's answer from the owners' answers about one
// prefix (the speaker's report, kernel sync's entry, IPAM's origin); it is
// pure, so every case is a unit test.

// explainParts are the owners' answers about one prefix.
type explainParts struct {
	bgp    bgp.PrefixReport
	fib    *kernelsync.FIBEntry // nil: kernel sync is off
	origin ipam.Origin
	// protocol is kernel sync's route protocol.
	protocol int
	localASN uint32
}

func assembleExplain(target string, x explainParts) *petrelpb.ExplainResponse {
	resp := &petrelpb.ExplainResponse{Target: target, Prefix: x.bgp.Prefix.String()}
	resp.Origin = originToProto(x.origin, x.bgp.Sources)
	for i, p := range x.bgp.Paths {
		resp.Paths = append(resp.Paths, pathToProto(p, i == 0))
	}
	for _, e := range x.bgp.Exports {
		resp.Exports = append(resp.Exports, exportToProto(e, x.localASN))
	}
	if x.fib != nil {
		resp.Fib = fibToProto(*x.fib, x.protocol)
	}
	resp.Verdict, resp.Summary = judge(resp, x)
	return resp
}

// judge is the verdict a script reads (explain's exit code) and the
// findings behind it.
func judge(resp *petrelpb.ExplainResponse, x explainParts) (petrelpb.ExplainResponse_Verdict, []string) {
	inKernel := resp.Fib != nil && len(resp.Fib.Kernel) > 0
	if len(resp.Paths) == 0 && len(x.bgp.Sources) == 0 && !x.origin.Block.IsValid() && !inKernel && (x.fib == nil || !x.fib.Verdict(x.protocol).Wanted) {
		return petrelpb.ExplainResponse_UNKNOWN, []string{"unknown: no IPAM block, no BGP path and no kernel route for " + resp.Prefix}
	}
	var problems []string
	if f := resp.Fib; f != nil && !f.Installed && (f.Wanted || hasRemotePath(resp.Paths)) {
		problems = append(problems, "not in the FIB: "+orText(f.Reason, "no usable route"))
	}
	if len(resp.Paths) > 0 && resp.Paths[0].Local {
		for _, e := range x.bgp.Exports {
			// A local route outside the pools stays home by design; one the
			// leak-proof rule lets out but a filter holds back is news.
			if e.State == bgp.StateEstablished && e.ByFilter {
				problems = append(problems, fmt.Sprintf("not sent to %s (%s): %s", e.Peer.Address, e.Peer.Name, e.Rule))
			}
		}
	}
	if len(problems) > 0 {
		return petrelpb.ExplainResponse_NOT_INSTALLED, problems
	}
	return petrelpb.ExplainResponse_INSTALLED, nil
}

func hasRemotePath(paths []*petrelpb.Path) bool {
	return len(paths) > 0 && !paths[0].Local
}

func orText(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func originToProto(o ipam.Origin, sources []string) *petrelpb.Origin {
	out := &petrelpb.Origin{Sources: sources, Affinity: o.Affinity, AffinityState: o.AffinityState,
		Allocated: o.Allocated, Handle: o.Handle, UsedBy: o.UsedBy, Borrowed: o.Borrowed}
	if o.Block.IsValid() {
		out.Block = o.Block.String()
	}
	if o.Pool != nil {
		out.Pool, out.PoolCidr, out.VxlanMode = o.Pool.Name, o.Pool.Spec.CIDR, o.Pool.Spec.VXLANMode
	}
	return out
}

func exportToProto(e bgp.PeerExport, localASN uint32) *petrelpb.PeerExport {
	ebgp := e.Peer.ASN != cmpOr(e.Peer.LocalASN, localASN)
	kind := "iBGP"
	if ebgp {
		kind = "eBGP"
	}
	return &petrelpb.PeerExport{Peer: e.Peer.Address.String(), Name: e.Peer.Name, Type: e.Peer.Type + ", " + kind,
		Ebgp: ebgp, State: e.State.String(), Exported: e.Exported, Rule: e.Rule}
}

func cmpOr(a, b uint32) uint32 {
	if a != 0 {
		return a
	}
	return b
}

func fibToProto(e kernelsync.FIBEntry, protocol int) *petrelpb.FIBState {
	v := e.Verdict(protocol)
	out := &petrelpb.FIBState{Wanted: v.Wanted, Reason: v.Reason, Stale: e.Stale && e.IsInstalled}
	for _, kr := range e.Kernel {
		out.Kernel = append(out.Kernel, &petrelpb.KernelRoute{Protocol: protocolName(kr.Protocol, protocol), Type: kr.Type,
			Owner: kernelOwner(kr, protocol), NextHops: nextHopsToProto(kr.NextHops)})
	}
	holder, ok := holdingRoute(e.Kernel, protocol)
	// A foreign route in the place of the one kernel sync wants is not
	// petrel's route: the prefix is not installed.
	out.Installed = ok && !(v.Wanted && !v.Installed)
	if ok {
		out.Owner, out.NextHops = kernelOwner(holder, protocol), nextHopsToProto(holder.NextHops)
	}
	if v.Wanted && !v.Installed {
		out.NextHops = nextHopsToProto(e.Desired) // what petrel would write
	}
	return out
}

// protocolName names kernel sync's own protocol "petrel", others as
// iproute2 does.
func protocolName(p, ours int) string {
	if p == ours {
		return fmt.Sprintf("petrel (%d)", p)
	}
	return kernelsync.ProtocolName(p)
}

// holdingRoute is the kernel route that carries traffic for the prefix:
// kernel sync's when there is one.
func holdingRoute(routes []kernelsync.KernelRoute, protocol int) (kernelsync.KernelRoute, bool) {
	for _, r := range routes {
		if r.Protocol == protocol {
			return r, true
		}
	}
	if len(routes) > 0 {
		return routes[0], true
	}
	return kernelsync.KernelRoute{}, false
}

// kernelOwner names who put a kernel route there: kernel sync by its
// protocol, the dataplane by its devices, anyone else by protocol.
func kernelOwner(r kernelsync.KernelRoute, protocol int) string {
	switch {
	case r.Protocol == protocol && r.Type == "blackhole":
		return "kernel sync (block blackhole)"
	case r.Protocol == protocol:
		return "kernel sync"
	}
	for _, nh := range r.NextHops {
		switch {
		case nh.Interface == dataplane.VXLANDevice:
			return "VXLAN"
		case strings.HasPrefix(nh.Interface, "cali"):
			return "workload"
		}
	}
	return fmt.Sprintf("foreign (protocol %s)", kernelsync.ProtocolName(r.Protocol))
}

func nextHopsToProto(nhs []kernelsync.NextHop) []*petrelpb.NextHop {
	var out []*petrelpb.NextHop
	for _, nh := range nhs {
		p := &petrelpb.NextHop{Interface: nh.Interface, Blackhole: nh.Blackhole}
		if nh.Gateway.IsValid() {
			p.Gateway = nh.Gateway.String()
		}
		out = append(out, p)
	}
	return out
}

// longestMatch picks the most specific candidate containing a. Default
// routes are left out: every address "matches" them, and explaining the
// default route for an address nobody knows helps nobody (ask for
// 0.0.0.0/0 itself to see it).
func longestMatch(a netip.Addr, candidates []netip.Prefix) (netip.Prefix, bool) {
	best, found := netip.Prefix{}, false
	for _, c := range candidates {
		c = c.Masked()
		if c.Bits() > 0 && c.Contains(a) && (!found || c.Bits() > best.Bits()) {
			best, found = c, true
		}
	}
	return best, found
}
