package daemon

import (
	"context"
	"net/netip"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/kernelsync"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// ListFIB is the FIB view: kernel sync's prefixes with the same kernel
// state explain shows, filtered by prefix and peer.
func (a *apiServer) ListFIB(ctx context.Context, req *petrelpb.ListFIBRequest) (*petrelpb.ListFIBResponse, error) {
	if a.kernel == nil {
		return nil, status.Error(codes.FailedPrecondition, "kernel sync is off: there is no FIB view")
	}
	filter, err := parseFIBFilter(req)
	if err != nil {
		return nil, err
	}
	kctx, cancel := context.WithTimeout(ctx, kernelQueryTimeout)
	defer cancel()
	entries, err := a.kernel.Entries(kctx)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "kernel sync: %v", err)
	}
	protocol := a.kernel.Config().Protocol
	resp := &petrelpb.ListFIBResponse{}
	for _, e := range entries {
		route, _ := a.speaker.Route(e.Prefix)
		peers := routePeers(route)
		if !filter.admits(e.Prefix, peers) {
			continue
		}
		resp.Routes = append(resp.Routes, fibRouteToProto(e, peers, protocol))
	}
	return resp, nil
}

// fibFilter is ListFIB's request, parsed.
type fibFilter struct {
	within netip.Prefix // invalid: all
	peer   netip.Addr   // invalid: all
}

func parseFIBFilter(req *petrelpb.ListFIBRequest) (fibFilter, error) {
	var f fibFilter
	var err error
	if req.Within != "" {
		if f.within, err = netip.ParsePrefix(req.Within); err != nil {
			return f, status.Errorf(codes.InvalidArgument, "within: %q is not a CIDR prefix", req.Within)
		}
	}
	if req.Peer != "" {
		if f.peer, err = netip.ParseAddr(req.Peer); err != nil {
			return f, status.Errorf(codes.InvalidArgument, "peer: %q is not an address", req.Peer)
		}
	}
	return f, nil
}

func (f fibFilter) admits(p netip.Prefix, peers []netip.Addr) bool {
	if f.within.IsValid() && !(f.within.Contains(p.Addr()) && p.Bits() >= f.within.Bits()) {
		return false
	}
	return !f.peer.IsValid() || slices.Contains(peers, f.peer)
}

// routePeers are the peers whose paths make up a route.
func routePeers(r bgp.Route) []netip.Addr {
	var out []netip.Addr
	for _, p := range r.Paths {
		if p.Peer.IsValid() && !slices.Contains(out, p.Peer) {
			out = append(out, p.Peer)
		}
	}
	return out
}

func fibRouteToProto(e kernelsync.FIBEntry, peers []netip.Addr, protocol int) *petrelpb.FIBRoute {
	st := fibToProto(e, protocol)
	out := &petrelpb.FIBRoute{Prefix: e.Prefix.String(), Wanted: st.Wanted, Installed: st.Installed, Owner: st.Owner,
		Stale: st.Stale, NextHops: st.NextHops, Reason: st.Reason}
	for _, p := range peers {
		out.Peers = append(out.Peers, p.String())
	}
	return out
}
