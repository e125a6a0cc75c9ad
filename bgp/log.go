package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	bgppacket "github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// reasonHandler sits between GoBGP's slog records and petrel's handler. It
// picks the reasons a session is not up ("failed to connect",
// notifications) out of GoBGP's per-peer records, because GoBGP exposes the
// socket errors of its dials nowhere else; they become the INFO column of
// `petrel status`. Everything else passes through to next unchanged.
//
// GoBGP's per-peer logger carries Topic=Peer and Key=<address> as logger
// attributes (slog's With), so the handler remembers them per derived
// handler instead of looking for them in each record.
type reasonHandler struct {
	next     slog.Handler
	onReason func(peer netip.Addr, reason string)
	// onLimit: GoBGP found the peer over its prefix limit (and logs it
	// nowhere else petrel can see).
	onLimit func(peer netip.Addr)
	peer    netip.Addr // from Key, on a Topic=Peer logger
	topic   string
}

func newReasonHandler(next slog.Handler, onReason func(netip.Addr, string), onLimit func(netip.Addr)) *reasonHandler {
	return &reasonHandler{next: next, onReason: onReason, onLimit: onLimit}
}

// Enabled lets GoBGP's per-peer debug records through, since "failed to
// connect" is one; the others are dropped in Handle unless next wants them.
// Loggers of other topics (the table's per-path records) cost nothing extra.
func (h *reasonHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.peer.IsValid() || h.next.Enabled(ctx, level)
}

func (h *reasonHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.peer.IsValid() {
		if reason := peerReason(r); reason != "" {
			h.onReason(h.peer, reason)
		}
		// Without a Pct attribute it is the limit itself, not the warning
		// threshold (which petrel does not set).
		if r.Message == "prefix limit reached" && recordAttr(r, "Pct") == "" && h.onLimit != nil {
			h.onLimit(h.peer)
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *reasonHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	for _, a := range attrs {
		switch a.Key {
		case "Topic":
			c.topic = a.Value.String()
		case "Key":
			if addr, err := netip.ParseAddr(a.Value.String()); err == nil {
				c.peer = addr
			}
		}
	}
	if c.topic != "Peer" {
		c.peer = netip.Addr{}
	}
	return &c
}

func (h *reasonHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	c.peer = netip.Addr{} // attributes inside a group are not the peer's key
	return &c
}

// peerReason turns the GoBGP records that explain a session failure into
// BIRD-like info text; other records yield "".
func peerReason(r slog.Record) string {
	switch r.Message {
	case "failed to connect":
		return "Socket: " + trimSyscallPrefix(recordAttr(r, "Error"))
	case "received notification":
		return "Received: " + notificationText(recordAttr(r, "Code"), recordAttr(r, "Subcode"))
	case "sent notification":
		return "Sent: " + notificationText(recordAttr(r, "Code"), recordAttr(r, "Subcode"))
	case "graceful restart timer expired":
		return "Graceful restart timer expired"
	}
	return ""
}

func recordAttr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// trimSyscallPrefix shortens "dial tcp 10.0.0.2:179: connect: connection
// refused" to "connection refused".
func trimSyscallPrefix(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// notificationText names a NOTIFICATION code/subcode pair ("cease/peer deconfigured").
func notificationText(code, subcode string) string {
	var c, sc uint8
	if _, err := fmt.Sscan(code, &c); err != nil {
		return fmt.Sprintf("notification %s/%s", code, subcode)
	}
	if _, err := fmt.Sscan(subcode, &sc); err != nil {
		return fmt.Sprintf("notification %s/%s", code, subcode)
	}
	return bgppacket.NewNotificationErrorCode(c, sc).String()
}
