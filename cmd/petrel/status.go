package main

import (
	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
)

func newStatusCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show BGP sessions, like calicoctl node status",
		Example: `  petrel status
  petrel status -o json --socket /var/run/petrel/petrel.sock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Status(cmd.Context(), socketFlag(cmd), output, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func newRoutesCmd() *cobra.Command {
	var output string
	var filter cli.RouteFilter
	var fibView bool
	cmd := &cobra.Command{
		Use:   "routes [--fib] [--within CIDR] [--peer ADDRESS]",
		Short: "Show the RIB (prefix, next hops, source peer, best/multipath) or, with --fib, the FIB (installed or not, owner, stale, why not)",
		Example: `  petrel routes
  petrel routes --within 192.168.0.0/16 -o json
  petrel routes --fib --peer 10.0.0.2 -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if fibView {
				return cli.ShowFIB(cmd.Context(), socketFlag(cmd), output, filter, cmd.OutOrStdout())
			}
			return cli.ShowRoutes(cmd.Context(), socketFlag(cmd), output, filter, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	cmd.Flags().StringVar(&filter.Within, "within", "", "only prefixes inside this CIDR")
	cmd.Flags().StringVar(&filter.Peer, "peer", "", "only prefixes with a path from this peer")
	cmd.Flags().BoolVar(&fibView, "fib", false, "the kernel's view: installed or not, owner, stale, why not")
	return cmd
}
