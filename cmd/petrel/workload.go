package main

import (
	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/workload"
)

func newWorkloadCmd() *cobra.Command {
	root := &cobra.Command{Use: "workload", Short: "Plumb pods into this node (what a CNI plugin calls)",
		Example: `  petrel workload add --name default/pod1 --netns pod1
  petrel workload add --name default/pod2 --netns pod2 --ipv6
  petrel workload del --name default/pod1`}
	root.AddCommand(newWorkloadAddCmd(), newWorkloadDelCmd())
	return root
}

func newWorkloadAddCmd() *cobra.Command {
	var req cli.WorkloadRequest
	cmd := &cobra.Command{
		Use:   "add --name NAMESPACE/POD --netns NAME|PATH",
		Short: "Allocate the pod's addresses and plumb it (veth, /32 and /128, routes); prints the addresses",
		Example: `  ip netns add pod1 && petrel workload add --name default/pod1 --netns pod1
  # dual stack: prints the IPv4 address, then the IPv6 address
  ip netns add pod2 && petrel workload add --name default/pod2 --netns pod2 --ipv6
  # IPv6 only
  ip netns add pod3 && petrel workload add --name default/pod3 --netns pod3 --ipv4=false --ipv6`,
		Args: cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	node := nodeFlag(cmd)
	cmd.Flags().StringVar(&req.Name, "name", "", "NAMESPACE/POD (required)")
	cmd.Flags().StringVar(&req.NetNS, "netns", "", "the pod's network namespace: a name under /var/run/netns or a path (required)")
	cmd.Flags().StringVar(&req.ContainerID, "container-id", "", "container id for the IPAM handle (default: derived from --name)")
	cmd.Flags().IntVar(&req.MTU, "mtu", workload.DefaultMTU, "pod MTU (the parent's minus 50 for VXLAN)")
	cmd.Flags().BoolVar(&req.IPv4, "ipv4", true, "assign an IPv4 address (as Calico's assign_ipv4)")
	cmd.Flags().BoolVar(&req.IPv6, "ipv6", false, "assign an IPv6 address from an IPv6 pool (as Calico's assign_ipv6)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		req.Node = *node
		return cli.WorkloadAdd(cmd.Context(), req, opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}

func newWorkloadDelCmd() *cobra.Command {
	var req cli.WorkloadRequest
	cmd := &cobra.Command{
		Use:     "del --name NAMESPACE/POD [--netns NAME|PATH]",
		Short:   "Unplumb the pod and release its addresses, of both families (harmless when already gone)",
		Example: `  petrel workload del --name default/pod1 --netns pod1`,
		Args:    cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	cmd.Flags().StringVar(&req.Name, "name", "", "NAMESPACE/POD (required)")
	cmd.Flags().StringVar(&req.NetNS, "netns", "", "the pod's network namespace, if it still exists")
	cmd.Flags().StringVar(&req.ContainerID, "container-id", "", "container id of the IPAM handle (default: derived from --name)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return cli.WorkloadDel(cmd.Context(), req, opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}
