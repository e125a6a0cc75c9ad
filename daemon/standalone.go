package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"

	"github.com/petrel-net/petrel/config"
)

// StandaloneOptions configure RunStandalone.
type StandaloneOptions struct {
	ConfigPath string
	// Socket overrides the config file's socket path (the --socket flag).
	Socket string
	Logger *slog.Logger
	// Level, when set, follows the config file's logLevel, also on reload.
	Level *slog.LevelVar
	// Reload receives a value for every SIGHUP.
	Reload <-chan struct{}
	// Ready, when set, is closed once the API socket accepts connections.
	Ready chan<- struct{}
	// MetricsAddr serves Prometheus metrics ("" = none).
	MetricsAddr string
	// Forwarding is the IP forwarding to turn on at start.
	Forwarding config.Forwarding
}

// RunStandalone runs a petrel node from a config file until ctx ends. A
// bad file at start is an error; a bad file on reload is logged and the
// running configuration stays in force.
func RunStandalone(ctx context.Context, opts StandaloneOptions) error {
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Level != nil {
		opts.Level.Set(cfg.LogLevel)
	}
	if opts.Socket != "" {
		cfg.Socket = opts.Socket
	}

	a, err := startAgent(ctx, agentConfig{
		NodeName: cfg.NodeName, Mode: "standalone", RouterID: cfg.RouterID, ASN: cfg.ASN,
		ListenAddresses: listenOn(cfg.ListenAddress), ListenPort: cfg.ListenPort, Socket: cfg.Socket, Kernel: cfg.Kernel, Logger: log,
		MetricsAddr: opts.MetricsAddr, Forwarding: opts.Forwarding,
	})
	if err != nil {
		return err
	}
	defer a.stop()
	// Kernel sync first: routes then reach the FIB as the first sessions
	// come up, not after the last peer is configured (500 peers take
	// GoBGP over a second to add).
	a.startKernel(ctx)
	loop := standaloneLoop(a.targets())
	if err := loop.Reconcile(ctx, desiredFromFile(cfg)); err != nil {
		log.Error("applying configuration", "config", opts.ConfigPath, "err", err)
	}
	log.Info("petrel running", "node", cfg.NodeName, "routerID", cfg.RouterID, "as", cfg.ASN,
		"peers", len(cfg.Peers), "originated", len(cfg.Originate), "socket", cfg.Socket)
	return a.run(ctx, opts.Ready, opts.Reload, func() { reload(ctx, loop, cfg, opts, log) })
}

// reload re-reads the file and applies what changed; a broken file changes
// nothing.
func reload(ctx context.Context, loop reconcileLoop, cfg *config.Config, opts StandaloneOptions, log *slog.Logger) {
	next, err := config.Load(opts.ConfigPath)
	if err != nil {
		log.Error("reload refused; keeping the running configuration", "err", err)
		return
	}
	if opts.Socket != "" {
		next.Socket = opts.Socket
	}
	if err := restartOnly(cfg, next); err != nil {
		log.Warn("reload: change needs a restart; applying the rest", "err", err)
	}
	if opts.Level != nil {
		opts.Level.Set(next.LogLevel)
	}
	if err := loop.Reconcile(ctx, desiredFromFile(next)); err != nil {
		log.Error("reload", "err", err)
	}
	cfg.Peers, cfg.Originate, cfg.Export = next.Peers, next.Originate, next.Export
	log.Info("configuration reloaded", "peers", len(next.Peers), "originated", len(next.Originate))
}

// desiredFromFile is what a config file asks for: its export ranges,
// originated prefixes and peers.
func desiredFromFile(cfg *config.Config) *desired {
	return &desired{ExportRanges: cfg.Export, Originated: cfg.Originate, Peers: cfg.Peers}
}

// restartOnly reports settings that differ but cannot change at run time,
// as BIRD does for its router id and listen socket.
func restartOnly(old, next *config.Config) error {
	var errs []error
	check := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			errs = append(errs, fmt.Errorf("%s: %v -> %v takes effect after a restart", key, a, b))
		}
	}
	check("routerID", old.RouterID, next.RouterID)
	check("asNumber", old.ASN, next.ASN)
	check("listen.address", old.ListenAddress, next.ListenAddress)
	check("listen.port", old.ListenPort, next.ListenPort)
	check("socket", old.Socket, next.Socket)
	check("kernel", old.Kernel, next.Kernel)
	return errors.Join(errs...)
}

// listenOn is the configured listen address as a list (none when unset).
func listenOn(a netip.Addr) []netip.Addr {
	if !a.IsValid() {
		return nil
	}
	return []netip.Addr{a}
}
