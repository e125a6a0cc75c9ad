package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/datastore/backends"
	"github.com/petrel-net/petrel/internal/profiling"
)

// CommandOptions are `petrel daemon`'s flags.
type CommandOptions struct {
	// ConfigPath selects standalone mode; empty runs from the datastore,
	// with the node's settings from the environment (config.NodeFromEnv).
	ConfigPath string
	// Socket is the control socket. In standalone mode it overrides the
	// file's only when SocketSet (the flag was given).
	Socket    string
	SocketSet bool
	Store     backends.Settings
	// MetricsAddr serves Prometheus metrics ("" = none).
	MetricsAddr string
	// IPForwarding and IPv6Forwarding are "Enabled" or "Disabled".
	IPForwarding, IPv6Forwarding string
}

// Main is `petrel daemon`: it sets up logging, profiling and signals (SIGTERM
// and SIGINT stop, SIGHUP reloads a standalone file), then runs the node in
// the mode opts select until it stops. A node that must restart to apply a
// setting (RestartInPlace) stops as on SIGTERM, keeping its routes, and
// execs itself again: same process, same arguments and environment.
func Main(ctx context.Context, opts CommandOptions) error {
	err := serve(ctx, opts)
	var again *RestartInPlace
	if errors.As(err, &again) {
		return reexec(again)
	}
	return err
}

func serve(ctx context.Context, opts CommandOptions) error {
	level := new(slog.LevelVar)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	fwd, err := config.ParseForwarding(opts.IPForwarding, opts.IPv6Forwarding)
	if err != nil {
		return err
	}
	defer profiling.Start()()
	if os.Getenv("GOGC") == "" {
		// Most of the daemon's peak memory at 100k routes is garbage
		// from route churn, not live data: collect at 50% heap growth
		// instead of 100% (measured in docs/BENCHMARKS.md).
		debug.SetGCPercent(50)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// Caught in both modes: SIGHUP's default action would kill the node.
	reload, stopReload := reloadOnSIGHUP()
	defer stopReload()
	if opts.ConfigPath == "" {
		return runFromEnv(ctx, opts, level, logger, fwd)
	}
	socket := ""
	if opts.SocketSet {
		socket = opts.Socket
	}
	return RunStandalone(ctx, StandaloneOptions{
		ConfigPath: opts.ConfigPath, Socket: socket, Logger: logger, Level: level, Reload: reload,
		MetricsAddr: opts.MetricsAddr, Forwarding: fwd,
	})
}

// runFromEnv runs the node from the datastore, as calico-node runs, with
// its settings from calico-node's environment.
func runFromEnv(ctx context.Context, opts CommandOptions, level *slog.LevelVar, log *slog.Logger, fwd config.Forwarding) error {
	node, err := config.NodeFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	level.Set(node.LogLevel)
	b, typ, err := backends.Open(ctx, opts.Store)
	if err != nil {
		return err
	}
	defer b.Close()
	return RunDatastore(ctx, DatastoreOptions{
		NodeName: node.Name, Backend: b, Mode: typ, IPv4: node.IPv4, IPv6: node.IPv6,
		Socket: opts.Socket, Kernel: node.Kernel, Logger: log, MetricsAddr: opts.MetricsAddr, Forwarding: fwd,
		Level: level, EnvLevel: node.LogLevel, RouterID: node.RouterID,
	})
}

// reloadOnSIGHUP delivers a value for every SIGHUP, at most one pending.
func reloadOnSIGHUP() (<-chan struct{}, func()) {
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}()
	return reload, func() { signal.Stop(hup) }
}

// RestartInPlace is how the node asks Main to exec it again: for the
// settings GoBGP only takes when it starts (listenPort, bindMode), as
// calico-node's Felix restarts itself for those it reads at start. The
// stop is graceful (no Cease, kernel routes kept), so peers and the FIB
// keep the routes while the new process comes up (graceful restart).
type RestartInPlace struct{ Reason string }

func (r *RestartInPlace) Error() string { return "restarting in place: " + r.Reason }

func reexec(r *RestartInPlace) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w: finding our executable: %v", r, err)
	}
	slog.Info("restarting in place", "reason", r.Reason, "exe", exe)
	return syscall.Exec(exe, os.Args, os.Environ())
}
