package main

import (
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/cni"
)

// newInstallCNICmd is `petrel install-cni`, what the seed's init container
// runs: binaries, kubeconfig and conflist onto the node.
func newInstallCNICmd() *cobra.Command {
	o := cni.InstallOptions{}
	cmd := &cobra.Command{
		Use:   "install-cni",
		Short: "Install the CNI plugins (petrel-cni, petrel-ipam), their kubeconfig and the conflist",
		Args:  cobra.NoArgs,
	}
	node := os.Getenv("KUBERNETES_NODE_NAME")
	if node == "" {
		node = os.Getenv("NODENAME")
	}
	if node == "" {
		node, _ = os.Hostname()
	}
	ds := os.Getenv("DATASTORE_TYPE")
	if ds == "" {
		ds = "kubernetes"
	}
	mtu, _ := strconv.Atoi(os.Getenv("CNI_MTU"))
	f := cmd.Flags()
	f.StringVar(&o.BinDir, "cni-bin-dir", cni.DefaultBinDir, "where the CNI binaries go")
	f.StringVar(&o.NetDir, "cni-net-dir", cni.DefaultNetDir, "where the conflist and kubeconfig go")
	f.StringVar(&o.Binary, "binary", "", "petrel binary to install (default: this one)")
	f.StringVar(&o.Template, "template", "", "conflist template file (default: the built-in deploy/cni/10-petrel.conflist)")
	f.StringVar(&o.ConflistName, "conflist-name", cni.DefaultConflistName, "file name of the conflist")
	f.StringVar(&o.KubeconfigName, "kubeconfig-name", cni.DefaultKubeconfigName, "file name of the kubeconfig in --cni-net-dir")
	f.StringVar(&o.NodeName, "nodename", node, "this node's name ($KUBERNETES_NODE_NAME, $NODENAME, hostname)")
	f.StringVar(&o.DatastoreType, "datastore-type", ds, "kubernetes or etcdv3 ($DATASTORE_TYPE)")
	f.StringVar(&o.EtcdEndpoints, "etcd-endpoints", os.Getenv("ETCD_ENDPOINTS"), "etcd URLs ($ETCD_ENDPOINTS)")
	f.IntVar(&o.MTU, "mtu", max(mtu, 0), "pod MTU ($CNI_MTU; 0 = 1450)")
	f.StringVar(&o.KubeconfigFrom, "kubeconfig-from", "", "copy this kubeconfig instead of building one from the service account")
	f.StringVar(&o.ServiceAccountDir, "serviceaccount-dir", cni.DefaultServiceAccountDir, "service account token and ca.crt")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		o.Out = cmd.OutOrStdout()
		return cni.Install(o)
	}
	return cmd
}
