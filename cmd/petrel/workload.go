package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/ipam"
	"github.com/petrel-net/petrel/workload"
)

func newWorkloadCmd() *cobra.Command {
	root := &cobra.Command{Use: "workload", Short: "Plumb pods into this node (what a CNI plugin calls)",
		Example: `  petrel workload add --name default/pod1 --netns pod1
  petrel workload del --name default/pod1`}
	root.AddCommand(newWorkloadAddCmd(), newWorkloadDelCmd())
	return root
}

// workloadID names the pod for IPAM: the container id when given, else a
// stable digest of NAMESPACE/POD, so add and del agree without state.
func workloadID(name, containerID string) string {
	if containerID != "" {
		return containerID
	}
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

func splitName(name string) (string, string, error) {
	ns, pod, ok := strings.Cut(name, "/")
	if !ok || ns == "" || pod == "" {
		return "", "", fmt.Errorf("--name %q: want NAMESPACE/POD", name)
	}
	return ns, pod, nil
}

// netnsPath accepts a name from `ip netns` or a path.
func netnsPath(s string) string {
	if strings.Contains(s, "/") {
		return s
	}
	return filepath.Join("/var/run/netns", s)
}

func newWorkloadAddCmd() *cobra.Command {
	var name, netns, containerID string
	var mtu int
	cmd := &cobra.Command{
		Use:     "add --name NAMESPACE/POD --netns NAME|PATH",
		Short:   "Allocate an address and plumb the pod (veth, /32, routes); prints the address",
		Example: `  ip netns add pod1 && petrel workload add --name default/pod1 --netns pod1`,
		Args:    cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	node := nodeFlag(cmd)
	cmd.Flags().StringVar(&name, "name", "", "NAMESPACE/POD (required)")
	cmd.Flags().StringVar(&netns, "netns", "", "the pod's network namespace: a name under /var/run/netns or a path (required)")
	cmd.Flags().StringVar(&containerID, "container-id", "", "container id for the IPAM handle (default: derived from --name)")
	cmd.Flags().IntVar(&mtu, "mtu", workload.DefaultMTU, "pod MTU (the parent's minus 50 for VXLAN)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ns, pod, err := splitName(name)
		if err != nil {
			return err
		}
		if netns == "" {
			return errors.New("add: --netns is required")
		}
		p := workload.Pod{Namespace: ns, Name: pod, Node: *node, Handle: workload.Handle(workloadID(name, containerID)), NetNS: netnsPath(netns), MTU: mtu}
		if err := workload.CheckNetNS(p.NetNS); err != nil {
			return fmt.Errorf("--netns %q: %w", netns, err) // before opening the datastore
		}
		return withIPAM(cmd.Context(), s, func(c *ipam.Client) error {
			addr, _, err := workload.Add(cmd.Context(), c, p)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), addr)
			return nil
		})
	}
	return cmd
}

func newWorkloadDelCmd() *cobra.Command {
	var name, netns, containerID string
	cmd := &cobra.Command{
		Use:     "del --name NAMESPACE/POD [--netns NAME|PATH]",
		Short:   "Unplumb the pod and release its address (harmless when already gone)",
		Example: `  petrel workload del --name default/pod1 --netns pod1`,
		Args:    cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	cmd.Flags().StringVar(&name, "name", "", "NAMESPACE/POD (required)")
	cmd.Flags().StringVar(&netns, "netns", "", "the pod's network namespace, if it still exists")
	cmd.Flags().StringVar(&containerID, "container-id", "", "container id of the IPAM handle (default: derived from --name)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ns, pod, err := splitName(name)
		if err != nil {
			return err
		}
		p := workload.Pod{Namespace: ns, Name: pod, Handle: workload.Handle(workloadID(name, containerID))}
		if netns != "" {
			p.NetNS = netnsPath(netns)
		}
		// Unplumb before opening the datastore: the veth goes even when
		// the datastore is down.
		if err := workload.Unplumb(cmd.Context(), p); err != nil {
			return err
		}
		return withIPAM(cmd.Context(), s, func(c *ipam.Client) error {
			n, err := workload.Release(cmd.Context(), c, p.Handle)
			if err == nil {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s, released %d address(es)\n", name, n)
			}
			return err
		})
	}
	return cmd
}
