package main

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/internal/version"
	petrelpb "github.com/petrel-net/petrel/proto"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the client's version and, when one answers, the daemon's",
		Example: `  petrel version`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "petrel %s (gobgp %s, %s)\n", version.String(), version.GoBGP(), runtime.Version())
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Second)
			defer cancel()
			c, err := cli.Dial(ctx, socketFlag(cmd))
			if err != nil {
				fmt.Fprintf(out, "daemon: %v\n", err)
				return nil
			}
			defer c.Close()
			info, err := c.GetInfo(ctx, &petrelpb.GetInfoRequest{})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "daemon: petrel %s on node %s (router id %s, AS %d, %s)\n", info.Version, info.NodeName, info.RouterId, info.AsNumber, info.Mode)
			return nil
		},
	}
}
