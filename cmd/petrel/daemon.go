package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/petrel-net/petrel/config"
	"github.com/petrel-net/petrel/daemon"
)

func newDaemonCmd() *cobra.Command {
	var opts daemon.CommandOptions
	cmd := &cobra.Command{
		Use:   "daemon [--config FILE.yaml]",
		Short: "Run the node agent (from the datastore, or standalone from a config file)",
		Long: `Run the petrel node agent.

Without --config it runs as calico-node does: NODENAME, IP and IP6 (an
address, autodetect or none, with IP_AUTODETECTION_METHOD and
IP6_AUTODETECTION_METHOD: first-found, can-reach=DEST, interface=REGEX,
skip-interface=REGEX, cidr=CIDR), DATASTORE_TYPE (etcdv3 with
ETCD_ENDPOINTS, or kubernetes with KUBECONFIG) select the node and the
datastore; an IPv6-only node (IP=none) needs CALICO_ROUTER_ID. The node
registers its Node with its addresses and follows Nodes, BGPPeers,
BGPConfigurations and BFDConfigurations live.
BGP_LOGSEVERITYSCREEN, PETREL_KERNEL_PROTOCOL, PETREL_KERNEL_TABLE and
PETREL_KERNEL_INTERFACES set the log level and kernel sync (every variable
is in docs/datastore.md).

With --config it runs standalone, the way a bird.cfg user runs BIRD: peers
and originated prefixes come from the YAML file. SIGHUP re-reads the file and
applies the difference without resetting unchanged sessions.

SIGTERM stops without withdrawing anything, so peers keep the routes
(graceful restart) while petrel comes back.`,
		Example: `  # as calico-node, from etcd
  NODENAME=node-a IP=autodetect DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://10.0.0.100:2379 petrel daemon

  # dual stack: an IPv4 and an IPv6 session to every dual-stack node (docs/ipv6.md)
  NODENAME=node-a IP6=autodetect IP6_AUTODETECTION_METHOD=can-reach=2001:db8::1 \
    DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://10.0.0.100:2379 petrel daemon

  # IPv6 only: no IPv4 address, so the router ID comes from the node name
  NODENAME=node-b IP=none IP6=autodetect IP6_AUTODETECTION_METHOD=interface=^ens CALICO_ROUTER_ID=hash \
    DATASTORE_TYPE=etcdv3 ETCD_ENDPOINTS=http://10.0.0.100:2379 petrel daemon

  # IPv6 forwarding is turned on once the node routes IPv6 (Auto); a node whose
  # own IPv6 default route comes from router advertisements may keep it off
  petrel daemon --ipv6-forwarding Disabled

  # standalone, from a bird.cfg-like file; reload with: kill -HUP <pid>
  petrel daemon --config /etc/petrel/petrel.yaml`,
		Args: cobra.NoArgs,
	}
	store := datastoreFlags(cmd)
	cmd.Flags().StringVarP(&opts.ConfigPath, "config", "c", "", "standalone configuration file (YAML)")
	cmd.Flags().StringVar(&opts.MetricsAddr, "metrics-addr", daemon.DefaultMetricsAddr, "serve Prometheus metrics here (empty: off)")
	forwardingFlags(cmd, &opts)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		opts.Store = *store
		opts.Socket, opts.SocketSet = socketFlag(cmd), cmd.Flags().Changed("socket")
		return daemon.Main(cmd.Context(), opts)
	}
	return cmd
}

// forwardingFlags adds --ip-forwarding and --ipv6-forwarding, defaulting to
// $PETREL_IP_FORWARDING and $PETREL_IPV6_FORWARDING.
func forwardingFlags(cmd *cobra.Command, opts *daemon.CommandOptions) {
	cmd.Flags().StringVar(&opts.IPForwarding, config.IPForwardingSetting, envOr("PETREL_IP_FORWARDING", config.DefaultIPForwarding),
		"Enabled: turn on net.ipv4.ip_forward in the node's namespace at start, as calico-node does; Disabled: leave it alone ($PETREL_IP_FORWARDING)")
	cmd.Flags().StringVar(&opts.IPv6Forwarding, config.IPv6ForwardingSetting, envOr("PETREL_IPV6_FORWARDING", config.DefaultIPv6Forwarding),
		"Auto: turn on net.ipv6.conf.all.forwarding once the node routes IPv6 (an IPv6 BGP address or IPv6 blocks); Enabled: at start; Disabled: leave it alone ($PETREL_IPV6_FORWARDING)")
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
