package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/backends"
)

// datastoreFlags are calico-node's settings, as flags defaulting to the
// environment, shared by the daemon and the resource commands.
func datastoreFlags(cmd *cobra.Command) *backends.Settings {
	s := backends.FromEnv()
	cmd.Flags().StringVar(&s.Type, "datastore-type", s.Type, "etcdv3 or kubernetes ($DATASTORE_TYPE)")
	f := cmd.Flags()
	f.StringVar(&s.Etcd.Endpoints, "etcd-endpoints", s.Etcd.Endpoints, "etcd URLs, comma-separated, http:// or https:// ($ETCD_ENDPOINTS)")
	f.StringVar(&s.Etcd.CACertFile, "etcd-ca-cert-file", s.Etcd.CACertFile, "CA certificate that signed etcd's server certificate ($ETCD_CA_CERT_FILE)")
	f.StringVar(&s.Etcd.CertFile, "etcd-cert-file", s.Etcd.CertFile, "client certificate for etcd ($ETCD_CERT_FILE)")
	f.StringVar(&s.Etcd.KeyFile, "etcd-key-file", s.Etcd.KeyFile, "client certificate's private key ($ETCD_KEY_FILE)")
	// The password only comes from $ETCD_PASSWORD: a flag would show it in ps.
	f.StringVar(&s.Etcd.Username, "etcd-username", s.Etcd.Username, "etcd user, with its password in $ETCD_PASSWORD ($ETCD_USERNAME)")
	cmd.Flags().StringVar(&s.Kubeconfig, "kubeconfig", s.Kubeconfig, "kubeconfig file ($KUBECONFIG)")
	return &s
}

// opener opens the datastore the flags select, for a cli command.
func opener(ctx context.Context, s *backends.Settings) cli.Opener {
	return func(fn func(datastore.Backend) error) error {
		b, _, err := backends.Open(ctx, *s)
		if err != nil {
			return err
		}
		defer b.Close()
		return fn(b)
	}
}

func newApplyCmd() *cobra.Command {
	var file string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--dry-run]",
		Short: "Create or update resources from YAML or JSON (several documents, or - for stdin)",
		Example: `  petrel apply -f datastore/testdata/seed.yaml
  petrel apply --dry-run -f tor-peer.yaml    # sessions and exports that would change, per node
  petrel get ippools -o yaml --datastore-type kubernetes | petrel apply -f - --datastore-type etcdv3 --etcd-endpoints http://10.0.0.100:2379`,
		Args: cobra.NoArgs,
	}
	s := datastoreFlags(cmd)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file with resources (- for stdin)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "write nothing; show, per node, the sessions added, removed or reset and the prefixes that start or stop being exported")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if dryRun {
			return cli.DryRunApply(cmd.Context(), file, os.Stdin, opener(cmd.Context(), s), cmd.OutOrStdout())
		}
		return cli.ApplyFile(cmd.Context(), file, os.Stdin, opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}

func newGetCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "Show resources (-o yaml|json|wide)",
		Example: `  petrel get nodes -o wide
  petrel get bgppeer rack1-tor -o yaml`,
		Args: cobra.RangeArgs(1, 2),
	}
	s := datastoreFlags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table, wide, yaml or json")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		name := ""
		if len(args) == 2 {
			name = args[1]
		}
		return cli.Get(cmd.Context(), args[0], name, output, opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}

func newDeleteCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "delete KIND NAME [--dry-run]",
		Short: "Delete a resource",
		Example: `  petrel delete bgppeer rack1-tor
  petrel delete bgpfilter edge --dry-run`,
		Args: cobra.ExactArgs(2),
	}
	s := datastoreFlags(cmd)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "write nothing; show what would change on each node")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if dryRun {
			return cli.DryRunDelete(cmd.Context(), args[0], args[1], opener(cmd.Context(), s), cmd.OutOrStdout())
		}
		return cli.Delete(cmd.Context(), args[0], args[1], opener(cmd.Context(), s), cmd.OutOrStdout())
	}
	return cmd
}
