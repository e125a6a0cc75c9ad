package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cni"
)

// newInstallCNICmd is `petrel install-cni`, what the seed's init container
// runs: binaries, kubeconfig and conflist onto the node. It reads the
// environment Calico's install-cni reads (see cni.BindInstallFlags);
// flags win over it.
func newInstallCNICmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "install-cni",
		Short: "Install the CNI plugins (petrel-cni, petrel-ipam), their kubeconfig and the conflist",
		Example: `  # what the DaemonSet's init container runs
  KUBERNETES_NODE_NAME=node-a petrel install-cni
  petrel install-cni --nodename node-a --datastore-type etcdv3 --etcd-endpoints http://10.0.0.100:2379`,
		Args: cobra.NoArgs,
	}
	c := cni.BindInstallFlags(cmd.Flags(), os.Getenv)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return c.Run(cmd.Context(), cmd.OutOrStdout()) }
	return cmd
}
