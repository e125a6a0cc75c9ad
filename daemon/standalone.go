package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"time"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/kernelsync"
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

	// Adopt the routes a previous run left in the kernel before any peer
	// connects, and tell the peers we are restarting if there were any.
	var kernel *kernelsync.Sync
	restarting := false
	if cfg.Kernel.Enabled {
		if kernel, err = kernelsync.New(kernelConfig(cfg, log)); err != nil {
			return err
		}
		adopted, err := kernel.Adopt()
		if err != nil {
			return err
		}
		restarting = adopted > 0
	}

	speakerCfg := bgp.Config{RouterID: cfg.RouterID, ASN: cfg.ASN, ListenPort: cfg.ListenPort, Logger: log, Restarting: restarting}
	if cfg.ListenAddress.IsValid() {
		speakerCfg.ListenAddresses = []netip.Addr{cfg.ListenAddress}
	}
	speaker, err := bgp.New(speakerCfg)
	if err != nil {
		return err
	}
	// Listen first: a second daemon on the same node must fail before it
	// opens BGP sessions.
	lis, err := listenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	if err := speaker.Start(ctx); err != nil {
		lis.Close()
		return err
	}
	defer speaker.Close()

	srv, _ := newGRPCServer(&apiServer{speaker: speaker, kernel: kernel, nodeName: cfg.NodeName, mode: "standalone", started: time.Now()})
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()
	defer srv.Stop()

	if err := applyStandalone(ctx, speaker, cfg); err != nil {
		log.Error("applying configuration", "config", opts.ConfigPath, "err", err)
	}
	kernelErr := make(chan error, 1)
	if kernel != nil {
		go func() { kernelErr <- kernel.Run(ctx, speaker) }()
	}
	log.Info("petrel running", "node", cfg.NodeName, "routerID", cfg.RouterID, "as", cfg.ASN,
		"peers", len(cfg.Peers), "originated", len(cfg.Originate), "socket", cfg.Socket)
	if opts.Ready != nil {
		close(opts.Ready)
	}

	for {
		select {
		case <-ctx.Done():
			log.Info("stopping; BGP sessions close without Cease so peers keep our routes (graceful restart)")
			return nil
		case err := <-serveErr:
			return fmt.Errorf("api server: %w", err)
		case err := <-kernelErr:
			if err != nil {
				return err
			}
		case <-opts.Reload:
			next, err := config.Load(opts.ConfigPath)
			if err != nil {
				log.Error("reload refused; keeping the running configuration", "err", err)
				continue
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
			if err := applyStandalone(ctx, speaker, next); err != nil {
				log.Error("reload", "err", err)
			}
			cfg.Peers, cfg.Originate, cfg.Export = next.Peers, next.Originate, next.Export
			log.Info("configuration reloaded", "peers", len(next.Peers), "originated", len(next.Originate))
		}
	}
}

func applyStandalone(ctx context.Context, speaker *bgp.Speaker, cfg *config.Config) error {
	return errors.Join(
		speaker.SetExportRanges(ctx, cfg.Export),
		speaker.SetOriginated(ctx, cfg.Originate),
		speaker.SetPeers(ctx, cfg.Peers),
	)
}

func kernelConfig(cfg *config.Config, log *slog.Logger) kernelsync.Config {
	k := cfg.Kernel
	return kernelsync.Config{
		Protocol: k.Protocol, Table: int(k.Table), ScanTime: k.ScanTime, Learn: k.Learn,
		Interfaces: k.Interfaces, RestartWait: k.RestartWait, Logger: log,
	}
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
