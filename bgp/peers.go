package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v4/api"
)

// peerPlan is what SetPeers must do to turn the running set into the
// desired one. Unchanged peers appear in none of the lists.
type peerPlan struct {
	add    []PeerConfig
	remove []PeerConfig
	// replace holds peers whose configuration changed; they are re-created.
	replace []PeerConfig
}

// PlanPeers is what SetPeers would do to turn running into desired:
// sessions added, removed and reset (re-created with a new
// configuration). Dry-run asks it, with the code SetPeers runs.
func PlanPeers(running, desired []PeerConfig) (add, remove, reset []PeerConfig) {
	have := make(map[netip.Addr]PeerConfig, len(running))
	for _, p := range running {
		have[p.Address] = p.WithDefaults()
	}
	plan, _, _ := planPeers(have, desired)
	return plan.add, plan.remove, plan.replace
}

// planPeers diffs desired against running. Invalid desired entries are
// reported in err and otherwise ignored: a running session at the same
// address keeps its old, working configuration, so one bad peer never
// disturbs the others.
func planPeers(running map[netip.Addr]PeerConfig, desired []PeerConfig) (peerPlan, map[netip.Addr]PeerConfig, error) {
	var errs []error
	want := make(map[netip.Addr]PeerConfig, len(desired))
	for _, d := range desired {
		d = d.WithDefaults()
		if err := d.Validate(); err != nil {
			errs = append(errs, err)
			if old, ok := running[d.Address]; ok && d.Address.IsValid() {
				want[d.Address] = old
			}
			continue
		}
		if prev, dup := want[d.Address]; dup {
			errs = append(errs, fmt.Errorf("peer %s: configured twice (%s and %s); keeping %s", d.Address, prev.Name, d.Name, prev.Name))
			continue
		}
		want[d.Address] = d
	}

	var plan peerPlan
	for addr, w := range want {
		old, ok := running[addr]
		switch {
		case !ok:
			plan.add = append(plan.add, w)
		case old != w:
			plan.replace = append(plan.replace, w)
		}
	}
	for addr, old := range running {
		if _, ok := want[addr]; !ok {
			plan.remove = append(plan.remove, old)
		}
	}
	byAddr := func(a, b PeerConfig) int { return a.Address.Compare(b.Address) }
	slices.SortFunc(plan.add, byAddr)
	slices.SortFunc(plan.remove, byAddr)
	slices.SortFunc(plan.replace, byAddr)
	return plan, want, errors.Join(errs...)
}

func familyOf(a netip.Addr) *api.Family {
	if a.Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// toAPIPeer renders a PeerConfig as GoBGP's peer. localRestarting tells the
// peer we are a restarting speaker (GoBGP cannot detect that itself). BFD
// is not part of it: petrel runs BFD beside GoBGP's peers (bfd.go).
func toAPIPeer(p PeerConfig, localRestarting bool) *api.Peer {
	p = p.WithDefaults()
	peer := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			LocalAsn:        p.LocalASN,
			AuthPassword:    p.Password,
			Description:     p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           uint64(DefaultConnectRetry.Seconds()),
			HoldTime:               uint64(p.HoldTime.Seconds()),
			KeepaliveInterval:      uint64(p.KeepaliveTime.Seconds()),
			IdleHoldTimeAfterReset: uint64(DefaultIdleHoldAfterErr.Seconds()),
		}},
		Transport: &api.Transport{
			RemotePort:  uint32(p.Port),
			PassiveMode: p.Passive,
		},
		AfiSafis: []*api.AfiSafi{{
			Config: &api.AfiSafiConfig{Family: familyOf(p.Address), Enabled: true},
		}},
	}
	// GoBGP enforces a limit the operator set (exactly, with the Cease
	// subcode RFC 4486 names), at the price of a walk of the peer's whole
	// adj-RIB-in per UPDATE; the default limit is the route table's
	// (Speaker.addPeer), which costs nothing per path.
	if p.MaxPrefixes > 0 {
		peer.AfiSafis[0].PrefixLimits = &api.PrefixLimit{Family: familyOf(p.Address), MaxPrefixes: p.MaxPrefixes}
	}
	if p.SourceAddress.IsValid() {
		peer.Transport.LocalAddress = p.SourceAddress.String()
	}
	switch {
	case p.TTLSecurity > 0: // GoBGP then sends with TTL 255
		peer.TtlSecurity = &api.TtlSecurity{Enabled: true, TtlMin: uint32(256 - int(p.TTLSecurity))}
	case p.Multihop > 0:
		peer.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.Multihop)}
	}
	peer.Conf.AllowOwnAsn = uint32(p.AllowOwnAS)
	if p.GracefulRestart {
		// Both the peer-level switch and the per-family one are needed, or
		// the capability carries no families and peers keep nothing.
		peer.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(p.RestartTime.Seconds()),
			LocalRestarting: localRestarting,
			// GoBGP's API leaves the selection deferral at 0; a restarting
			// speaker waiting for a peer that never sends End-of-RIB must
			// still send its routes well before the peers' restart timers.
			DeferralTime: uint32(selectionDeferral.Seconds()),
		}
		peer.AfiSafis[0].MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
	}
	if p.LongLivedStaleTime > 0 {
		peer.GracefulRestart.LonglivedEnabled = true
		peer.GracefulRestart.RestartTime = uint32(llgrRestartTime.Seconds())
		peer.AfiSafis[0].LongLivedGracefulRestart = &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{
			Enabled: true, RestartTime: uint32(p.LongLivedStaleTime.Seconds()),
		}}
	}
	if p.AddPaths {
		peer.AfiSafis[0].AddPaths = &api.AddPaths{Config: &api.AddPathsConfig{Receive: true, SendMax: addPathsSendMax}}
	}
	if p.RouteReflectorClient {
		peer.RouteReflector = &api.RouteReflector{RouteReflectorClient: true, RouteReflectorClusterId: p.ClusterID.String()}
	}
	return peer
}
