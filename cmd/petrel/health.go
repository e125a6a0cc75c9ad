package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
	petrelpb "github.com/petrel-net/petrel/proto"
)

var errNotReady = errors.New("not ready")

func newHealthCmd() *cobra.Command {
	var bgpReady, kernelReady, live bool
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
			if !bgpReady && !kernelReady && !live {
				return errors.New("health: ask for at least one of --bgp-ready, --kernel-ready, --live")
			}
			c, err := cli.Dial(cmd.Context(), socketFlag(cmd))
			if err != nil {
				fmt.Fprintln(cmd.OutOrStdout(), "not live:", err)
				return errNotReady
			}
			defer c.Close()
			h, err := c.GetHealth(cmd.Context(), &petrelpb.GetHealthRequest{})
			if err != nil {
				fmt.Fprintln(cmd.OutOrStdout(), "not live:", err)
				return errNotReady
			}
			var parts []string
			ok := true
			add := func(asked, pass bool, what, reason string) {
				if !asked {
					return
				}
				state := "ready"
				if what == "live" {
					state = "live"
				}
				if !pass {
					state, ok = "not "+state, false
				}
				parts = append(parts, fmt.Sprintf("%s %s (%s)", what, state, reason))
			}
			add(bgpReady, h.BgpReady, "bgp", h.BgpReason)
			add(kernelReady, h.KernelReady, "kernel", h.KernelReason)
			add(live, h.Live, "live", h.LiveReason)
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(parts, "; "))
			if !ok {
				return errNotReady
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&bgpReady, "bgp-ready", false, "BGP readiness (Calico's -bird-ready)")
	cmd.Flags().BoolVar(&kernelReady, "kernel-ready", false, "kernel sync readiness (Calico's -felix-ready)")
	cmd.Flags().BoolVar(&live, "live", false, "liveness")
	return cmd
}
