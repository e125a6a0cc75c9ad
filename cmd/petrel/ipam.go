package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/backends"
	"github.com/petrel-net/petrel/ipam"
)

// errCheckFailed makes `petrel ipam check` exit 1 after printing its report.
var errCheckFailed = errors.New("ipam check found problems")

func newIPAMCmd() *cobra.Command {
	root := &cobra.Command{Use: "ipam", Short: "Calico-compatible IP address management",
		Example: `  petrel ipam show --show-blocks
  petrel ipam check`}
	root.AddCommand(newIPAMAllocateCmd(), newIPAMReleaseCmd(), newIPAMShowCmd(), newIPAMCheckCmd())
	return root
}

// withIPAM opens the datastore and runs fn with an IPAM client on it.
func withIPAM(ctx context.Context, s *backends.Settings, fn func(*ipam.Client) error) error {
	return withBackend(ctx, s, func(b datastore.Backend) error { return fn(ipam.New(b)) })
}

// nodeFlag is --node, defaulting like the daemon to $NODENAME, then the
// hostname.
func nodeFlag(cmd *cobra.Command) *string {
	return cmd.Flags().String("node", config.NodeName(os.Getenv), "node the addresses are for ($NODENAME)")
}

func newIPAMAllocateCmd() *cobra.Command {
	var handle, namespace, pod, pool, ip string
	cmd := &cobra.Command{
		Use:   "allocate --handle H [--namespace N --pod P] [--pool CIDR] [--ip IP]",
		Short: "Allocate an address (from the node's blocks, claiming one if needed) and print it",
		Example: `  petrel ipam allocate --handle k8s-pod-network.0123abcd --namespace default --pod web-0
  petrel ipam allocate --handle my-vip --ip 192.168.0.200 --node node-a`,
		Args: cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	node := nodeFlag(cmd)
	cmd.Flags().StringVar(&handle, "handle", "", "handle id, like k8s-pod-network.<container id> (required)")
	cmd.Flags().StringVar(&namespace, "namespace", "", "pod namespace, recorded in the allocation")
	cmd.Flags().StringVar(&pod, "pod", "", "pod name, recorded in the allocation")
	cmd.Flags().StringVar(&pool, "pool", "", "only this pool (CIDR)")
	cmd.Flags().StringVar(&ip, "ip", "", "this exact address")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if handle == "" {
			return errors.New("allocate: --handle is required")
		}
		attrs := map[string]string{"node": *node, "timestamp": time.Now().UTC().String()}
		if namespace != "" {
			attrs["namespace"] = namespace
		}
		if pod != "" {
			attrs["pod"] = pod
		}
		return withIPAM(cmd.Context(), s, func(c *ipam.Client) error {
			if ip != "" {
				addr, err := netip.ParseAddr(ip)
				if err != nil {
					return fmt.Errorf("--ip %q: not an IP address", ip)
				}
				if err := c.AssignIP(cmd.Context(), *node, addr, handle, attrs); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), addr)
				return nil
			}
			args := ipam.AssignArgs{Node: *node, Handle: handle, Num4: 1, Attrs: attrs}
			if pool != "" {
				p, err := netip.ParsePrefix(pool)
				if err != nil {
					return fmt.Errorf("--pool %q: not a CIDR", pool)
				}
				args.Pools = []netip.Prefix{p}
			}
			addrs, err := c.AutoAssign(cmd.Context(), args)
			if err != nil {
				return err
			}
			for _, a := range addrs {
				fmt.Fprintln(cmd.OutOrStdout(), a)
			}
			return nil
		})
	}
	return cmd
}

func newIPAMReleaseCmd() *cobra.Command {
	var handle, ip string
	var releaseBlocks bool
	cmd := &cobra.Command{
		Use:   "release (--handle H | --ip IP) [--release-empty-blocks]",
		Short: "Release addresses; blocks stay affine to the node unless asked",
		Example: `  petrel ipam release --handle k8s-pod-network.0123abcd
  petrel ipam release --ip 192.168.0.200 --release-empty-blocks`,
		Args: cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	node := nodeFlag(cmd)
	cmd.Flags().StringVar(&handle, "handle", "", "release every address of this handle")
	cmd.Flags().StringVar(&ip, "ip", "", "release this address")
	cmd.Flags().BoolVar(&releaseBlocks, "release-empty-blocks", false, "then give the node's empty blocks back to the pool (withdraws their routes)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if (handle == "") == (ip == "") {
			return errors.New("release: give exactly one of --handle and --ip")
		}
		return withIPAM(cmd.Context(), s, func(c *ipam.Client) error {
			var n int
			var err error
			if handle != "" {
				n, err = c.ReleaseByHandle(cmd.Context(), handle)
			} else {
				addr, perr := netip.ParseAddr(ip)
				if perr != nil {
					return fmt.Errorf("--ip %q: not an IP address", ip)
				}
				n, err = c.ReleaseIPs(cmd.Context(), addr)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "released %d address(es)\n", n)
			if releaseBlocks {
				blocks, err := c.ReleaseEmptyBlocks(cmd.Context(), *node)
				if err != nil {
					return err
				}
				for _, b := range blocks {
					fmt.Fprintf(cmd.OutOrStdout(), "released block %s of node %s\n", b, *node)
				}
			}
			return nil
		})
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
		return withBackend(cmd.Context(), s, func(b datastore.Backend) error {
			c := ipam.New(b)
			usage, err := c.Usage(cmd.Context())
			if err != nil {
				return err
			}
			blocks := map[string][]ipam.BlockInfo{}
			if showBlocks {
				nodes, _, err := b.List(cmd.Context(), datastore.KindNode)
				if err != nil {
					return err
				}
				for _, n := range nodes {
					if blocks[n.GetName()], err = c.NodeBlocks(cmd.Context(), n.GetName()); err != nil {
						return err
					}
				}
			}
			return cli.WriteIPAMUsage(cmd.OutOrStdout(), usage, blocks)
		})
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
		return withIPAM(cmd.Context(), s, func(c *ipam.Client) error {
			r, err := c.Check(cmd.Context())
			if err != nil {
				return err
			}
			cli.WriteIPAMCheck(cmd.OutOrStdout(), r)
			if !r.OK() {
				return errCheckFailed
			}
			return nil
		})
	}
	return cmd
}
