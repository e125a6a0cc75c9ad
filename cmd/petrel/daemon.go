package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/daemon"
	"github.com/petrel-net/petrel/datastore/backends"
)

func newDaemonCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "daemon [--config FILE.yaml]",
		Short: "Run the node agent (from the datastore, or standalone from a config file)",
		Long: `Run the petrel node agent.

Without --config it runs as calico-node does: NODENAME, IP (an address, or
autodetect), DATASTORE_TYPE (etcdv3 with ETCD_ENDPOINTS, or kubernetes with
KUBECONFIG) select the node and the datastore; the node registers its Node
and follows Nodes, BGPPeers, BGPConfigurations and BFDConfigurations live.

With --config it runs standalone, the way a bird.cfg user runs BIRD: peers
and originated prefixes come from the YAML file. SIGHUP re-reads the file and
applies the difference without resetting unchanged sessions.

SIGTERM stops without withdrawing anything, so peers keep the routes
(graceful restart) while petrel comes back.`,
		Args: cobra.NoArgs,
	}
	store := datastoreFlags(cmd)
	metricsAddr := cmd.Flags().String("metrics-addr", daemon.DefaultMetricsAddr, "serve Prometheus metrics here (empty: off)")
	forwarding := forwardingFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		level := new(slog.LevelVar)
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
		slog.SetDefault(logger)

		fwd, err := forwarding()
		if err != nil {
			return err
		}
		defer startProfiling()()
		if os.Getenv("GOGC") == "" {
			// Most of the daemon's peak memory at 100k routes is garbage
			// from route churn, not live data: collect at 50% heap growth
			// instead of 100% (measured in docs/BENCHMARKS.md).
			debug.SetGCPercent(50)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		reload := make(chan struct{}, 1)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for range hup {
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending
				}
			}
		}()

		if configPath == "" {
			return runDatastore(ctx, cmd, store, logger, *metricsAddr, fwd)
		}
		socket := ""
		if cmd.Flags().Changed("socket") {
			socket = socketFlag(cmd)
		}
		return daemon.RunStandalone(ctx, daemon.StandaloneOptions{
			ConfigPath: configPath, Socket: socket, Logger: logger, Level: level, Reload: reload, MetricsAddr: *metricsAddr,
			Forwarding: fwd,
		})
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "standalone configuration file (YAML)")
	return cmd
}

// runDatastore runs the agent from calico-node's environment.
func runDatastore(ctx context.Context, cmd *cobra.Command, store *backends.Settings, log *slog.Logger, metricsAddr string, fwd config.Forwarding) error {
	nodeName := os.Getenv("NODENAME")
	if nodeName == "" {
		nodeName, _ = os.Hostname()
	}
	b, typ, err := backends.Open(ctx, *store)
	if err != nil {
		return err
	}
	defer b.Close()
	// Kernel settings are the standalone file's defaults.
	defaults, err := config.Parse([]byte("routerID: 0.0.0.1\n"))
	if err != nil {
		return err
	}
	return daemon.RunDatastore(ctx, daemon.DatastoreOptions{
		NodeName: nodeName, Backend: b, Mode: typ, IP: os.Getenv("IP"),
		Socket: socketFlag(cmd), Kernel: defaults.Kernel, Logger: log, MetricsAddr: metricsAddr, Forwarding: fwd,
	})
}

// forwardingFlags adds --ip-forwarding and --ipv6-forwarding, defaulting to
// $PETREL_IP_FORWARDING and $PETREL_IPV6_FORWARDING, and returns their
// validated value.
func forwardingFlags(cmd *cobra.Command) func() (config.Forwarding, error) {
	ipv4 := cmd.Flags().String(config.IPForwardingSetting, envOr("PETREL_IP_FORWARDING", config.DefaultIPForwarding),
		"Enabled: turn on net.ipv4.ip_forward in the node's namespace at start, as calico-node does; Disabled: leave it alone ($PETREL_IP_FORWARDING)")
	ipv6 := cmd.Flags().String(config.IPv6ForwardingSetting, envOr("PETREL_IPV6_FORWARDING", config.DefaultIPv6Forwarding),
		"Enabled: also turn on net.ipv6.conf.all.forwarding, for nodes routing IPv6 pods ($PETREL_IPV6_FORWARDING)")
	return func() (config.Forwarding, error) { return config.ParseForwarding(*ipv4, *ipv6) }
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
