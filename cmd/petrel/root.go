package main

import (
	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/config"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "petrel",
		Short: "BGP routing daemon for Kubernetes nodes",
		Example: `  NODENAME=node-a DATASTORE_TYPE=kubernetes petrel daemon   # the node agent, as calico-node
  petrel status                                             # its BGP sessions
  petrel routes --within 192.168.0.0/16                     # its RIB`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("socket", config.DefaultSocket, "path of the daemon's control socket")
	root.AddCommand(newDaemonCmd(), newStatusCmd(), newRoutesCmd(), newExplainCmd(), newVersionCmd(), newApplyCmd(), newGetCmd(), newDeleteCmd(), newIPAMCmd(), newWorkloadCmd(), newHealthCmd(), newLabCmd())
	return root
}

func socketFlag(cmd *cobra.Command) string {
	s, _ := cmd.Flags().GetString("socket")
	return s
}
