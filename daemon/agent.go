package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/internal/nlretry"
	"github.com/petrel-net/petrel/kernelsync"
)

// agentConfig is what both modes (standalone and datastore) need to bring
// a node up.
type agentConfig struct {
	NodeName string
	Mode     string // "standalone", "etcdv3", "kubernetes"
	RouterID netip.Addr
	ASN      uint32
	// ListenAddresses are where BGP listens (none: every address).
	ListenAddresses []netip.Addr
	ListenPort      int32
	Socket          string
	Kernel          config.Kernel
	Logger          *slog.Logger
	// MetricsAddr serves Prometheus metrics ("" = none).
	MetricsAddr string
	// IPAMUse reports the node's blocks and addresses in use (datastore
	// mode only).
	IPAMUse func() (blocks, used int)
	// Skipped counts the datastore objects left out because they cannot be
	// decoded, by kind (datastore mode only).
	Skipped func() map[datastore.Kind]int
	// Forwarding is the IP forwarding to turn on in the node's namespace.
	Forwarding config.Forwarding
}

// agent is a running speaker with its kernel sync and API server.
type agent struct {
	log     *slog.Logger
	speaker *bgp.Speaker
	kernel  *kernelsync.Sync
	api     *apiServer
	// done delivers the first fatal error of the API server or kernel sync.
	done chan error
	stop func()
	// kernelOnce starts kernel sync once: datastore mode needs it running
	// before its first apply (the VXLAN hand-off waits for it).
	kernelOnce sync.Once
	// ipv6ForwardingAuto: IPv6 forwarding goes on once the node routes
	// IPv6 (ipv6Forwarding=Auto).
	ipv6ForwardingAuto bool
}

// startAgent brings a node up in the order that keeps traffic flowing
// through a restart: adopt the kernel routes a previous run left (and so
// learn whether we are restarting), refuse to run beside another daemon,
// start the speaker, serve the API. The caller starts kernel sync
// (startKernel; the speaker's InitialSyncDone keeps a restart's routes until
// the peers are configured), then configures peers and prefixes.
func startAgent(ctx context.Context, cfg agentConfig) (*agent, error) {
	log := cfg.Logger
	if err := enableForwarding(sysctlRoot, cfg.Forwarding, log); err != nil {
		return nil, err
	}
	m := newMetrics()
	var kernel *kernelsync.Sync
	restarting := false
	if cfg.Kernel.Enabled {
		var err error
		kcfg := kernelConfig(cfg.Kernel, log)
		kcfg.Observer = m
		if kernel, err = kernelsync.New(kcfg); err != nil {
			return nil, err
		}
		adopted, err := kernel.Adopt()
		switch {
		case nlretry.Interrupted(err):
			// Links churning under us must not stop the node: start without
			// graceful restart; the first kernel scan then reconciles the
			// routes a previous run left like any others.
			log.Warn("kernel routes not adopted: the route table kept changing while it was read", "err", err)
		case err != nil:
			return nil, err
		}
		restarting = adopted > 0
	}
	speakerCfg := bgp.Config{RouterID: cfg.RouterID, ASN: cfg.ASN, ListenPort: cfg.ListenPort, Logger: log, Restarting: restarting}
	speakerCfg.ListenAddresses = cfg.ListenAddresses
	speaker, err := bgp.New(speakerCfg)
	if err != nil {
		return nil, err
	}
	// Listen first: a second daemon on the same node must fail before it
	// opens BGP sessions.
	lis, err := listenUnix(cfg.Socket, log)
	if err != nil {
		return nil, err
	}
	if err := speaker.Start(ctx); err != nil {
		lis.Close()
		return nil, err
	}
	probe := &prober{started: time.Now(), speaker: speaker, kernel: kernel}
	a := &agent{
		ipv6ForwardingAuto: cfg.Forwarding.IPv6Auto,
		log:                log,
		speaker:            speaker,
		kernel:             kernel,
		api:                &apiServer{speaker: speaker, kernel: kernel, prober: probe, nodeName: cfg.NodeName, mode: cfg.Mode, started: probe.started},
		done:               make(chan error, 2),
	}
	srv, hs := newGRPCServer(a.api)
	go func() { a.done <- fmt.Errorf("api server: %w", srv.Serve(lis)) }()
	go probe.publish(ctx, hs)
	m.watch(speaker, kernel, cfg.IPAMUse, cfg.Skipped)
	m.watchConvergence(ctx, speaker, kernel, log)
	if cfg.MetricsAddr != "" {
		go func() {
			// Metrics are for people; a busy port must not stop routing.
			if err := m.serve(ctx, cfg.MetricsAddr); err != nil {
				log.Warn("metrics endpoint not served", "addr", cfg.MetricsAddr, "err", err)
			}
		}()
	}
	var once sync.Once
	a.stop = func() {
		once.Do(func() {
			srv.Stop()
			speaker.Close()
		})
	}
	return a, nil
}

// run starts kernel sync (once the speaker has its peers), signals ready,
// then calls onEvent for every value on events until ctx ends (nil: a
// normal stop) or a part of the agent fails.
func (a *agent) run(ctx context.Context, ready chan<- struct{}, events <-chan struct{}, onEvent func()) error {
	a.startKernel(ctx)
	if ready != nil {
		close(ready)
	}
	for {
		select {
		case <-ctx.Done():
			a.log.Info(stopMessage)
			return nil
		case err := <-a.done:
			return err
		case <-events:
			onEvent()
		}
	}
}

// startKernel starts kernel sync, once.
func (a *agent) startKernel(ctx context.Context) {
	if a.kernel == nil {
		return
	}
	a.kernelOnce.Do(func() {
		go func() {
			if err := a.kernel.Run(ctx, a.speaker); err != nil {
				a.done <- err
			}
		}()
	})
}

func kernelConfig(k config.Kernel, log *slog.Logger) kernelsync.Config {
	return kernelsync.Config{
		Protocol: k.Protocol, Table: int(k.Table), ScanTime: k.ScanTime, Learn: k.Learn,
		LearnIgnore: []int{dataplane.RouteProtocol}, Interfaces: k.Interfaces, RestartWait: k.RestartWait, Logger: log,
	}
}

const stopMessage = "stopping; BGP sessions close without Cease so peers keep our routes (graceful restart)"
