package bgp

import (
	"maps"
	"net/netip"
	"slices"
)

// PrefixReport is the speaker's answer about one prefix: its paths, who
// put a local path there, and what each peer gets.
type PrefixReport struct {
	Prefix netip.Prefix
	// Paths are the multipath set, best first (empty: no route).
	Paths []Path
	// Sources inject the local path (SourceOriginate, SourceKernel,
	// SourceDirect, or a reconciler's own source).
	Sources []string
	// Exports has one entry per configured peer when there is a route.
	Exports []PeerExport
}

// PeerExport is the export decision for one peer.
type PeerExport struct {
	Peer  PeerConfig
	State SessionState
	ExportDecision
}

// exportState is the export side of the speaker at one moment.
type exportState struct {
	originated, extra, reflectable []netip.Prefix
	policy                         RoutePolicy
	sources                        []string
}

// Explain reports what the speaker knows of exactly prefix p.
func (s *Speaker) Explain(p netip.Prefix) PrefixReport {
	p = p.Masked()
	rep := PrefixReport{Prefix: p}
	route, ok := s.table.get(p)
	if ok {
		rep.Paths = route.Paths
	}
	st := s.exportState(p)
	rep.Sources = st.sources
	if len(rep.Paths) == 0 {
		return rep
	}
	peers := s.peerConfigs()
	best := rep.Paths[0]
	from, fromKnown := peers[best.Peer]
	for _, addr := range slices.SortedFunc(maps.Keys(peers), netip.Addr.Compare) {
		pc := peers[addr]
		dec := DecideExport(ExportInput{
			Prefix: p, Best: best, Peer: pc.cfg, LocalASN: s.cfg.ASN,
			FromIBGP:     !best.Local && fromKnown && from.cfg.ASN == localASNOf(from.cfg, s.cfg.ASN),
			FromRRClient: fromKnown && from.cfg.RouteReflectorClient,
			Exportable:   st.extra, Reflectable: st.reflectable, Originated: st.originated,
			Rules: st.policy.Peers[addr].Export,
		})
		rep.Exports = append(rep.Exports, PeerExport{Peer: pc.cfg, State: pc.state, ExportDecision: dec})
	}
	return rep
}

type peerSnapshot struct {
	cfg   PeerConfig
	state SessionState
}

func (s *Speaker) peerConfigs() map[netip.Addr]peerSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[netip.Addr]peerSnapshot, len(s.peers))
	for a, pe := range s.peers {
		out[a] = peerSnapshot{cfg: pe.cfg, state: pe.state}
	}
	return out
}

func (s *Speaker) exportState(p netip.Prefix) exportState {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	st := exportState{policy: s.routePolicy}
	for _, prefixes := range s.exported { // originated blocks and Service prefixes, each exactly
		st.originated = append(st.originated, slices.Collect(maps.Keys(prefixes))...)
	}
	for r := range s.extra {
		st.extra = append(st.extra, r.prefix)
	}
	if s.reflect {
		st.reflectable = slices.Clone(st.extra)
		for r := range s.serviceRanges {
			st.reflectable = append(st.reflectable, r.prefix)
		}
	}
	st.sources = slices.Sorted(maps.Keys(s.injected[p]))
	return st
}

// PrefixesFrom lists the prefixes whose multipath set holds a path from
// peer, unsorted, without copying the table.
func (s *Speaker) PrefixesFrom(peer netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	s.table.each(func(p netip.Prefix, paths []Path) {
		if slices.ContainsFunc(paths, func(path Path) bool { return path.Peer == peer }) {
			out = append(out, p)
		}
	})
	return out
}

// Covering lists the prefixes of the RIB that contain a, unsorted.
func (s *Speaker) Covering(a netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	s.table.each(func(p netip.Prefix, _ []Path) {
		if p.Contains(a) {
			out = append(out, p)
		}
	})
	return out
}
