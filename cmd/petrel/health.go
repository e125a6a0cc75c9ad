package main

import (
	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
)

func newHealthCmd() *cobra.Command {
	var checks cli.HealthChecks
	cmd := &cobra.Command{
		Use:   "health [--bgp-ready] [--kernel-ready] [--live]",
		Short: "Readiness/liveness probe: exit 0 when every asked check passes, 1 otherwise, with one line saying why",
		Example: `  # the DaemonSet's readiness and liveness probes
  petrel health --bgp-ready --kernel-ready
  petrel health --live`,
		Long: `Kubernetes probes call this, as calico-node's run "calico-node -bird-ready -felix-ready".

--bgp-ready: no peers, or (first 30 s) every peer Established and graceful
restart finished, or (after) at least one peer Established.
--kernel-ready: kernel sync finished its first reconcile and no route write
keeps failing.
--live: the daemon answers and its loops are not stuck.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Health(cmd.Context(), socketFlag(cmd), checks, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&checks.BGPReady, "bgp-ready", false, "BGP readiness (Calico's -bird-ready)")
	cmd.Flags().BoolVar(&checks.KernelReady, "kernel-ready", false, "kernel sync readiness (Calico's -felix-ready)")
	cmd.Flags().BoolVar(&checks.Live, "live", false, "liveness")
	return cmd
}
