package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

// onPrefixLimit runs on GoBGP's goroutine, under its peer lock: it only
// marks the peer and hands the shutdown over.
func (s *Speaker) onPrefixLimit(addr netip.Addr) {
	s.mu.Lock()
	pe, ok := s.peers[addr]
	first := ok && !pe.overLimit
	var cfg PeerConfig
	if first {
		pe.overLimit = true
		pe.limitHits++
		cfg = pe.cfg
	}
	s.mu.Unlock()
	if first {
		go s.holdDownOverLimit(addr, cfg)
	}
}

// holdDownOverLimit replaces the peer that went over its prefix limit with
// the same peer, administratively down. GoBGP has sent the Cease
// NOTIFICATION but keeps the session until the peer closes it, and then,
// with graceful restart, keeps its routes as stale until the restart
// timer: deleting the peer drops them at once. It stays down, as with
// BIRD's "import limit action disable" and FRR's maximum-prefix, until its
// configuration changes (SetPeers re-creates it) or petrel restarts.
func (s *Speaker) holdDownOverLimit(addr netip.Addr, cfg PeerConfig) {
	s.peersOpMu.Lock()
	defer s.peersOpMu.Unlock()
	s.mu.Lock()
	pe, ok := s.peers[addr]
	current := ok && pe.cfg == cfg
	s.mu.Unlock()
	if !current {
		return // replaced meanwhile: the new configuration starts afresh
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg = cfg.WithDefaults()
	if err := s.server.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		s.log.Error("peer over its prefix limit: delete", "peer", cfg.Name, "address", addr, "err", err)
		return
	}
	s.table.forget(addr) // and whatever of its flood GoBGP still hands over
	p := toAPIPeer(cfg, false)
	p.Conf.AdminDown = true
	if err := s.server.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
		s.log.Error("peer over its prefix limit: re-add it held down", "peer", cfg.Name, "address", addr, "err", err)
	}
	s.setReason(addr, fmt.Sprintf("Prefix limit %d exceeded", cfg.PrefixLimit()))
	s.log.Warn("peer sent more prefixes than its limit: session shut down (Cease, maximum number of prefixes reached) and its routes withdrawn; it stays down until its configuration changes or petrel restarts",
		"peer", cfg.Name, "address", addr, "maxPrefixes", cfg.PrefixLimit())
}
