package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"reflect"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// bfdEngine is GoBGP's BFD server (RFC 5880/5881 single hop), but one that
// petrel starts beside the BgpServer instead of the one inside it, which a
// neighbour's Bfd config drives. Two GoBGP v4.8.0 behaviours make the
// built-in wiring unusable for a node agent:
//
//   - A BFD timeout resets the peer by queueing a NOTIFICATION that only an
//     Established session sends. A peer that restarts closes its session
//     first (graceful restart keeps its routes) and falls silent on BFD a
//     moment later: the queued reset then kills the next session the moment
//     it comes up, and drops the routes graceful restart kept. A BIRD peer
//     removes its BFD session with each BGP session, so the next timeout
//     queues another reset, and so on for good.
//   - Switching a neighbour's BFD with UpdatePeer, the only way to tie BFD
//     to the session, also replaces the per-family state negotiated in
//     OPEN: graceful restart and LLGR then drop the peer's routes at once.
//
// So petrel's own server gets a peer while its session is Established
// (Speaker.syncBFD), and its resets go through bfdResetter, which passes
// on only a reset of an Established session.
type bfdEngine interface {
	Start(ctx context.Context, config oc.BfdConfig) error
	Stop()
	AddPeer(ctx context.Context, peer netip.Addr, config oc.BfdConfig, bindInterface string) error
	DeletePeer(ctx context.Context, peer netip.Addr) error
}

func newBFDEngine(ctx context.Context, s *Speaker, logger *slog.Logger) (bfdEngine, error) {
	e := server.NewBfdServer(bfdResetter{s}, logger)
	if err := e.Start(ctx, oc.BfdConfig{Port: server.BfdServerPort}); err != nil {
		return nil, err
	}
	return e, nil
}

// bfdResetter is what the BFD server calls when a session goes down.
type bfdResetter struct{ s *Speaker }

// ResetPeer asks GoBGP for the session's state rather than reading
// petrel's copy, which follows GoBGP's events a little behind; a session
// that closes between the two calls still gets the queued reset (a window
// of microseconds against BFD's detection time of a few hundred ms).
func (r bfdResetter) ResetPeer(ctx context.Context, req *api.ResetPeerRequest) error {
	addr, err := netip.ParseAddr(req.Address)
	if err != nil {
		return err
	}
	established := false
	err = r.s.server.ListPeer(ctx, &api.ListPeerRequest{Address: req.Address}, func(p *api.Peer) {
		established = p.GetState().GetSessionState() == api.PeerState_SESSION_STATE_ESTABLISHED
	})
	if err != nil || !established {
		return err // nothing to reset; GoBGP would keep the reset for the next session
	}
	r.s.log.Warn("BFD declared the peer down; resetting the session without graceful restart", "address", addr)
	return r.s.ResetPeer(ctx, addr, "BFD down")
}

// bfdConfig renders b for GoBGP (intervals in microseconds).
func bfdConfig(b BFDConfig) oc.BfdConfig {
	return oc.BfdConfig{
		Enabled:                  true,
		DesiredMinimumTxInterval: uint32(b.MinTx.Microseconds()),
		RequiredMinimumReceive:   uint32(b.MinRx.Microseconds()),
		DetectionMultiplier:      b.Multiplier,
	}
}

// bfdState reads a peer's BFD session state from the engine. GoBGP returns
// it in a struct with unexported fields (its BgpServer reads them from
// inside the package), so this reads them by reflection; TestBFDState
// fails if GoBGP changes their shape. ok is false for an unknown peer.
func bfdState(e bfdEngine, addr netip.Addr) (state string, ok bool) {
	out := reflect.ValueOf(e).MethodByName("GetPeerState").Call([]reflect.Value{reflect.ValueOf(addr)})
	if !out[1].IsNil() {
		return "", false
	}
	st := out[0].Elem().FieldByName("state").FieldByName("SessionState")
	return bfdStateName(api.BfdSessionState(st.Int())), true
}

// bfdStateName names a BFD session state as RFC 5880 does.
func bfdStateName(st api.BfdSessionState) string {
	switch st {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "Up"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "Init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "AdminDown"
	}
	return "Down"
}
