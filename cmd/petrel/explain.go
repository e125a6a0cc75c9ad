package main

import (
	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
)

func newExplainCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "explain PREFIX|ADDRESS",
		Short: "Why is this route (not) here? Origin, BGP paths, export per peer, kernel state",
		Example: `  petrel explain 192.168.1.0/26
  petrel explain 192.168.2.7 -o yaml   # an address: its longest match`,
		Long: `explain asks each part of the daemon about one prefix (an address is
explained through its longest matching prefix): IPAM (block, pool,
affinity, borrowed address), the BGP speaker (paths, best path and ECMP
set, per peer: exported or not and the rule that decided) and kernel sync
(installed or not, by whom, next hops, and why not).

Exit status: 0 installed (and, for this node's own prefixes, sent to every
established peer), 1 known but not installed or not exported, 2 unknown,
3 no answer.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cli.Explain(cmd.Context(), socketFlag(cmd), output, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}
