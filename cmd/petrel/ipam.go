package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/config"
)

func newIPAMCmd() *cobra.Command {
	root := &cobra.Command{Use: "ipam", Short: "Calico-compatible IP address management",
		Example: `  petrel ipam show --show-blocks
  petrel ipam check`}
	root.AddCommand(newIPAMAllocateCmd(), newIPAMReleaseCmd(), newIPAMShowCmd(), newIPAMCheckCmd())
	return root
}

// nodeFlag is --node, defaulting like the daemon to $NODENAME, then the
// hostname.
func nodeFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("node", config.NodeName(os.Getenv), "node the addresses are for ($NODENAME)")
}

func newIPAMAllocateCmd() *cobra.Command {
	var req cli.AllocateRequest
	cmd := &cobra.Command{
		Use:   "allocate --handle H [--namespace N --pod P] [--ipv4=BOOL --ipv6] [--pool CIDR] [--ip IP]",
		Short: "Allocate an address of each family (from the node's blocks, claiming one if needed) and print them",
		Example: `  petrel ipam allocate --handle k8s-pod-network.0123abcd --namespace default --pod web-0
  petrel ipam allocate --handle k8s-pod-network.4567cdef --ipv6   # dual stack: one IPv4, one IPv6
  petrel ipam allocate --handle v6-only --ipv4=false --ipv6
  petrel ipam allocate --handle my-vip --ip 192.168.0.200 --node node-a
  petrel ipam allocate --handle my-vip6 --ip fd00:10::200 --node node-a`,
		Args: cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	node := nodeFlag(cmd)
	cmd.Flags().StringVar(&req.Handle, "handle", "", "handle id, like k8s-pod-network.<container id> (required)")
	cmd.Flags().StringVar(&req.Namespace, "namespace", "", "pod namespace, recorded in the allocation")
	cmd.Flags().StringVar(&req.Pod, "pod", "", "pod name, recorded in the allocation")
	cmd.Flags().StringVar(&req.Pool, "pool", "", "one address of this pool's family, from this pool only (CIDR)")
	cmd.Flags().BoolVar(&req.IPv4, "ipv4", true, "allocate an IPv4 address")
	cmd.Flags().BoolVar(&req.IPv6, "ipv6", false, "allocate an IPv6 address (from an IPv6 pool, blocks /122 by default)")
	cmd.Flags().StringVar(&req.IP, "ip", "", "this exact address")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req.Node = *node
		return cli.IPAMAllocate(cmd.Context(), req, opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}

func newIPAMReleaseCmd() *cobra.Command {
	var rel cli.ReleaseRequest
	cmd := &cobra.Command{
		Use:   "release (--handle H | --ip IP) [--release-empty-blocks]",
		Short: "Release addresses; blocks stay affine to the node unless asked",
		Example: `  petrel ipam release --handle k8s-pod-network.0123abcd
  petrel ipam release --ip 192.168.0.200 --release-empty-blocks`,
		Args: cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	node := nodeFlag(cmd)
	cmd.Flags().StringVar(&rel.Handle, "handle", "", "release every address of this handle")
	cmd.Flags().StringVar(&rel.IP, "ip", "", "release this address")
	cmd.Flags().BoolVar(&rel.ReleaseEmptyBlocks, "release-empty-blocks", false, "then give the node's empty blocks back to the pool (withdraws their routes)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		rel.Node = *node
		return cli.IPAMRelease(cmd.Context(), rel, opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}

func newIPAMShowCmd() *cobra.Command {
	var showBlocks bool
	cmd := &cobra.Command{
		Use:   "show [--show-blocks]",
		Short: "Pools with their used and free addresses, like calicoctl ipam show",
		Example: `  petrel ipam show
  petrel ipam show --show-blocks`,
		Args: cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	cmd.Flags().BoolVar(&showBlocks, "show-blocks", false, "also list every node's blocks")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cli.IPAMShow(cmd.Context(), showBlocks, opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}

func newIPAMCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "check",
		Short:   "Cross-check blocks, handles and affinities; exit 1 on leaks, orphans or corruption",
		Example: `  petrel ipam check || echo "IPAM needs repair"`,
		Args:    cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cli.IPAMCheck(cmd.Context(), opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}
