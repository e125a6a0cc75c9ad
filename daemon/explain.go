package daemon

import (
	"context"
	"net/netip"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/petrel-net/petrel/ipam"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// kernelQueryTimeout bounds a wait for kernel sync's loop: explain must
// answer even when the loop is busy with a 100k-route burst.
const kernelQueryTimeout = 5 * time.Second

// Explain asks each owner about the target's prefix and assembles the
// answers (explain_assemble.go).
func (a *apiServer) Explain(ctx context.Context, req *petrelpb.ExplainRequest) (*petrelpb.ExplainResponse, error) {
	prefix, err := a.explainPrefix(ctx, req.Target)
	if err != nil {
		return nil, err
	}
	if !prefix.IsValid() {
		return &petrelpb.ExplainResponse{Target: req.Target, Verdict: petrelpb.ExplainResponse_UNKNOWN,
			Summary: []string{"unknown: no route, IPAM block or kernel route covers " + req.Target}}, nil
	}
	x := explainParts{bgp: a.speaker.Explain(prefix), localASN: a.speaker.Config().ASN}
	if a.snapshot != nil {
		snap := a.snapshot()
		x.origin = ipam.OriginOf(prefix, snap.Blocks, snap.Affinities, snap.Pools)
	}
	if a.kernel != nil {
		kctx, cancel := context.WithTimeout(ctx, kernelQueryTimeout)
		defer cancel()
		e, err := a.kernel.Entry(kctx, prefix)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "kernel sync: %v", err)
		}
		x.fib, x.protocol = &e, a.kernel.Config().Protocol
	}
	return assembleExplain(req.Target, x), nil
}

// explainPrefix parses the target: a prefix as given, an address through
// its longest match among the RIB, the kernel's table and IPAM's blocks
// (invalid when nothing covers it).
func (a *apiServer) explainPrefix(ctx context.Context, target string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(target); err == nil {
		return p.Masked(), nil
	}
	addr, err := netip.ParseAddr(target)
	if err != nil {
		return netip.Prefix{}, status.Errorf(codes.InvalidArgument, "%q is neither a prefix nor an address", target)
	}
	candidates := a.speaker.Covering(addr)
	if a.snapshot != nil {
		for _, b := range a.snapshot().Blocks {
			if p, err := netip.ParsePrefix(b.Spec.CIDR); err == nil {
				candidates = append(candidates, p)
			}
		}
	}
	if a.kernel != nil {
		kctx, cancel := context.WithTimeout(ctx, kernelQueryTimeout)
		defer cancel()
		covering, err := a.kernel.Covering(kctx, addr)
		if err != nil {
			return netip.Prefix{}, status.Errorf(codes.Unavailable, "kernel sync: %v", err)
		}
		candidates = append(candidates, covering...)
	}
	p, _ := longestMatch(addr, candidates)
	return p, nil
}
