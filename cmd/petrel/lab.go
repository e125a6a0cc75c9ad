package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/lab"
)

func newLabCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "lab",
		Short: "Build a petrel cluster on this machine from a containerlab topology (root; see docs/lab.md)",
		Example: `  sudo petrel lab up deploy/lab/mesh3.clab.yml && sudo petrel lab status
  sudo petrel lab down`,
	}
	root.AddCommand(newLabUpCmd(), newLabStatusCmd(), newLabDownCmd(), newLabRestartCmd())
	return root
}

func newLabUpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "up FILE.clab.yml",
		Short: "Create namespaces, links, etcd, petrel daemons, BIRD and pods (or a Kubernetes cluster running petrel as a DaemonSet); wait until pods reach each other",
		Example: "  sudo petrel lab up deploy/lab/mesh3.clab.yml\n" +
			"  sudo petrel lab up deploy/lab/services.clab.yml   # a kube-apiserver beside etcd, a BIRD ToR showing Service routes\n" +
			"  sudo petrel lab up deploy/lab/dualstack.clab.yml  # IPv4 and IPv6: sessions of both families, dual-stack pods, two ping matrices\n" +
			"  sudo petrel lab up deploy/lab/k8s3.clab.yml   # kubelets, containerd, the DaemonSet (make k8s-binaries first)",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return lab.Up(cmd.Context(), args[0], lab.Options{Out: cmd.OutOrStdout()})
		},
	}
}

// labName resolves the optional NAME|FILE argument; without one, the only
// lab present.
func labName(args []string) (string, error) {
	if len(args) == 1 {
		return lab.ResolveName(args[0])
	}
	labs := lab.Labs()
	switch len(labs) {
	case 0:
		return "", errors.New("no lab is up")
	case 1:
		return labs[0], nil
	}
	return "", fmt.Errorf("several labs are up (%s): name one", strings.Join(labs, ", "))
}

func newLabStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status [NAME|FILE.clab.yml]",
		Short: "Nodes, sessions per node, Service routes (each BIRD's, each node's), pods and a pod-to-pod ping matrix per family; exits 1 unless healthy",
		Example: `  sudo petrel lab status
  sudo petrel lab status mesh3`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := labName(args)
			if err != nil {
				return err
			}
			rep, err := lab.Status(name, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			if !rep.Healthy() {
				return fmt.Errorf("lab %s: %d problem(s)", name, len(rep.Problems))
			}
			return nil
		},
	}
}

func newLabDownCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "down [NAME|FILE.clab.yml]",
		Short: "Remove every namespace, link, process and file of the lab (all labs without an argument)",
		Example: `  sudo petrel lab down deploy/lab/mesh3.clab.yml
  sudo petrel lab down`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			names := lab.Labs()
			if len(args) == 1 {
				name, err := lab.ResolveName(args[0])
				if err != nil {
					return err
				}
				names = []string{name}
			}
			if len(names) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no lab to remove")
			}
			var errs []error
			for _, n := range names {
				errs = append(errs, lab.Down(n, cmd.OutOrStdout()))
			}
			return errors.Join(errs...)
		},
	}
}

func newLabRestartCmd() *cobra.Command {
	var opts lab.RestartOptions
	var all bool
	var name string
	cmd := &cobra.Command{
		Use:   "restart NODE... | --all",
		Short: "Stop petrel daemons (SIGTERM, or SIGKILL with --kill) all at once and start them again as up did; waits for the sessions",
		Example: `  sudo petrel lab restart node1 node2
  sudo petrel lab restart --all --kill --lab mesh3`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("name the nodes to restart, or --all (not both)")
			}
			var nameArgs []string
			if name != "" {
				nameArgs = []string{name}
			}
			lname, err := labName(nameArgs)
			if err != nil {
				return err
			}
			return lab.Restart(cmd.Context(), lname, args, opts, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&opts.Kill, "kill", false, "SIGKILL instead of SIGTERM (no graceful shutdown)")
	cmd.Flags().BoolVar(&opts.NoWait, "no-wait", false, "return once the daemons answer, without waiting for their sessions")
	cmd.Flags().BoolVar(&all, "all", false, "restart every petrel node of the lab at once")
	cmd.Flags().StringVar(&name, "lab", "", "the lab (NAME or FILE.clab.yml; the only lab when omitted)")
	return cmd
}
