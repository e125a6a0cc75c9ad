package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/daemon"
)

func newDaemonCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "daemon --config FILE.yaml",
		Short: "Run the node agent (standalone: peers and prefixes from a config file)",
		Long: `Run the petrel node agent.

With --config it runs standalone, the way a bird.cfg user runs BIRD: peers
and originated prefixes come from the YAML file. SIGHUP re-reads the file and
applies the difference without resetting unchanged sessions. SIGTERM stops
without withdrawing anything, so peers keep the routes (graceful restart).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("daemon: --config is required (datastore mode arrives with the datastore)")
			}
			level := new(slog.LevelVar)
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			slog.SetDefault(logger)

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

			socket := ""
			if cmd.Flags().Changed("socket") {
				socket = socketFlag(cmd)
			}
			return daemon.RunStandalone(ctx, daemon.StandaloneOptions{
				ConfigPath: configPath, Socket: socket, Logger: logger, Level: level, Reload: reload,
			})
		},
	}
	cmd.Flags().StringVarP(&configPath, "config", "c", "", "standalone configuration file (YAML)")
	return cmd
}
