package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

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
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := c.Validate(); err != nil {
			return err
		}
		o := c.Options
		o.Out = cmd.OutOrStdout()
		if err := cni.Install(o); err != nil {
			return err
		}
		if !c.Sleep {
			return nil
		}
		// Calico's sidecar mode: stay up until the pod is stopped.
		parent := cmd.Context()
		if parent == nil {
			parent = context.Background()
		}
		ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		fmt.Fprintln(o.Out, "installed; sleeping until terminated ($SLEEP=true)")
		<-ctx.Done()
		return nil
	}
	return cmd
}
