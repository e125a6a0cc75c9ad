package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/petrel-net/petrel/config"
)

// sysctlRoot is where the daemon's network namespace shows its sysctls.
const sysctlRoot = "/proc/sys"

// enableForwarding turns on the IP forwarding that fwd asks for in the
// daemon's network namespace: without it the node drops every packet
// between its pods and other nodes. A switch that is already on is not
// written, so a read-only /proc/sys with forwarding on is fine.
func enableForwarding(root string, fwd config.Forwarding, log *slog.Logger) error {
	switches := []struct {
		on      bool
		sysctl  string
		setting string
	}{
		{fwd.IPv4, "net/ipv4/ip_forward", config.IPForwardingSetting},
		{fwd.IPv6, ipv6ForwardingSysctl, config.IPv6ForwardingSetting},
	}
	for _, s := range switches {
		if !s.on {
			continue
		}
		if err := enableSysctl(filepath.Join(root, s.sysctl), log); err != nil {
			return fmt.Errorf("%w (set %s=Disabled to leave it alone)", err, s.setting)
		}
	}
	return nil
}

const ipv6ForwardingSysctl = "net/ipv6/conf/all/forwarding"

// forwardingReconciler turns IPv6 forwarding on the first time the node
// routes IPv6 (ipv6Forwarding=Auto): it has IPv6 sessions (an IPv6 BGP
// address) or IPv6 prefixes to originate. It never turns it off again, as
// Felix does not; a node that stops routing IPv6 keeps forwarding.
type forwardingReconciler struct {
	root string
	log  *slog.Logger
	on   bool
}

func (r *forwardingReconciler) Name() string { return "ipv6 forwarding" }

func (r *forwardingReconciler) Reconcile(_ context.Context, d *desired) error {
	if r.on || !d.routesIPv6() {
		return nil
	}
	if err := enableSysctl(filepath.Join(r.root, ipv6ForwardingSysctl), r.log); err != nil {
		return fmt.Errorf("%w (set %s=Disabled to leave it alone)", err, config.IPv6ForwardingSetting)
	}
	r.on = true
	return nil
}

// enableSysctl writes 1 to the sysctl file path unless it holds 1 already.
func enableSysctl(path string, log *slog.Logger) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if string(bytes.TrimSpace(old)) == "1" {
		return nil
	}
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		return fmt.Errorf("write 1 to %s: %w", path, err)
	}
	log.Info("IP forwarding enabled", "sysctl", path)
	return nil
}
