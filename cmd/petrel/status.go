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
	var output, within string
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Show the RIB: prefix, next hops, source peer, best/multipath",
		Example: `  petrel routes
  petrel routes --within 192.168.0.0/16 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.ShowRoutes(cmd.Context(), socketFlag(cmd), output, within, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringVar(&within, "within", "", "only prefixes inside this CIDR")
	return cmd
}
