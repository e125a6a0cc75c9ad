package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
	petrelpb "github.com/petrel-net/petrel/proto"
)

func newStatusCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show BGP sessions, like calicoctl node status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDaemon(cmd, output, func(c *cli.Client) error {
				resp, err := c.ListPeers(cmd.Context(), &petrelpb.ListPeersRequest{})
				if err != nil {
					return err
				}
				if output == "json" {
					return cli.WriteStatusJSON(cmd.OutOrStdout(), resp.Peers)
				}
				cli.WriteStatus(cmd.OutOrStdout(), resp.Peers, time.Now())
				info, err := c.GetInfo(cmd.Context(), &petrelpb.GetInfoRequest{})
				if err != nil {
					return err
				}
				cli.WriteKernel(cmd.OutOrStdout(), info.Kernel)
				cli.WriteServices(cmd.OutOrStdout(), info.ServicePrefixes)
				cli.WriteProblems(cmd.OutOrStdout(), info.Problems)
				return nil
			})
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
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDaemon(cmd, output, func(c *cli.Client) error {
				routes, err := c.Routes(cmd.Context(), within)
				if err != nil {
					return err
				}
				if output == "json" {
					return cli.WriteRoutesJSON(cmd.OutOrStdout(), routes)
				}
				return cli.WriteRoutes(cmd.OutOrStdout(), routes)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringVar(&within, "within", "", "only prefixes inside this CIDR")
	return cmd
}

// withDaemon checks the output flag, connects to the daemon and runs fn.
func withDaemon(cmd *cobra.Command, output string, fn func(*cli.Client) error) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("--output %q: must be table or json", output)
	}
	c, err := cli.Dial(cmd.Context(), socketFlag(cmd))
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}
