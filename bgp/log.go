package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	bgppacket "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// gobgpLogger adapts GoBGP's logger interface to slog. It also picks the
// reasons a session is not up ("failed to connect", notifications) out of
// GoBGP's log stream, because GoBGP exposes them nowhere else; they become
// the INFO column of `petrel status`.
type gobgpLogger struct {
	log      *slog.Logger
	onReason func(peer netip.Addr, reason string)
}

// GetLevel always answers Debug so that GoBGP emits the debug-only
// "failed to connect" record we need; slog's own level decides what is
// printed.
func (l *gobgpLogger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }
func (l *gobgpLogger) SetLevel(gobgplog.LogLevel)  {}
func (l *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	l.emit(slog.LevelError, msg, f)
	panic(msg)
}
func (l *gobgpLogger) Fatal(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l *gobgpLogger) Error(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l *gobgpLogger) Warn(msg string, f gobgplog.Fields)  { l.emit(slog.LevelWarn, msg, f) }
func (l *gobgpLogger) Info(msg string, f gobgplog.Fields)  { l.emit(slog.LevelInfo, msg, f) }
func (l *gobgpLogger) Debug(msg string, f gobgplog.Fields) { l.emit(slog.LevelDebug, msg, f) }

func (l *gobgpLogger) emit(level slog.Level, msg string, f gobgplog.Fields) {
	if reason := peerReason(msg, f); reason != "" && l.onReason != nil {
		if addr, err := netip.ParseAddr(fmt.Sprint(f["Key"])); err == nil {
			l.onReason(addr, reason)
		}
	}
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]slog.Attr, 0, len(f))
	for k, v := range f {
		attrs = append(attrs, slog.Any(strings.ToLower(k), v))
	}
	l.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// peerReason turns the GoBGP records that explain a session failure into
// BIRD-like info text; other records yield "".
func peerReason(msg string, f gobgplog.Fields) string {
	if f["Topic"] != "Peer" {
		return ""
	}
	switch msg {
	case "failed to connect":
		return "Socket: " + trimSyscallPrefix(fmt.Sprint(f["Error"]))
	case "received notification":
		return "Received: " + notificationText(f["Code"], f["Subcode"])
	case "sent notification":
		if e, ok := f["Data"].(*bgppacket.MessageError); ok {
			return "Sent: " + notificationText(e.TypeCode, e.SubTypeCode) + ": " + e.Message
		}
		return fmt.Sprintf("Sent: %v", f["Data"])
	case "graceful restart timer expired":
		return "Graceful restart timer expired"
	}
	return ""
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
func notificationText(code, subcode any) string {
	c, ok1 := code.(uint8)
	sc, ok2 := subcode.(uint8)
	if !ok1 || !ok2 {
		return fmt.Sprintf("notification %v/%v", code, subcode)
	}
	return bgppacket.NewNotificationErrorCode(c, sc).String()
}
