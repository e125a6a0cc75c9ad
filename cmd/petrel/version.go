package main

import (
	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the client's version and, when one answers, the daemon's",
		Example: `  petrel version`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cli.Version(cmd.Context(), socketFlag(cmd), cmd.OutOrStdout())
		},
	}
}
