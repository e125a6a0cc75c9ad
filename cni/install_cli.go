package cni

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// InstallCLI is `petrel install-cni`'s command line: the options and
// whether to sleep after installing.
type InstallCLI struct {
	Options InstallOptions
	// Sleep keeps the process alive after installing (Calico's $SLEEP,
	// for install-cni run as a sidecar container). petrel runs it as an
	// init container, so the default is false.
	Sleep bool
	// templateFile is --template / $CNI_NETWORK_CONFIG_FILE.
	templateFile string
	// envMTU, envSleep are $CNI_MTU and $SLEEP, applied by Validate.
	envMTU, envSleep string
	fs               *pflag.FlagSet
}

// BindInstallFlags registers install-cni's flags on fs. Their defaults come
// from the environment Calico's install-cni reads (getenv, normally
// os.Getenv), so a flag given on the command line wins over the
// environment:
//
//	CNI_NETWORK_CONFIG       the conflist template text (replaces the built-in one)
//	CNI_NETWORK_CONFIG_FILE  a file holding it (--template; wins over CNI_NETWORK_CONFIG)
//	CNI_CONF_NAME            the conflist's file name (--conflist-name, default 10-petrel.conflist)
//	CNI_NET_DIR              the config directory (--cni-net-dir, default /etc/cni/net.d)
//	CNI_MTU                  the pod MTU (--mtu, default 1450)
//	KUBERNETES_NODE_NAME     the node (--nodename; then $NODENAME, then the hostname)
//	SLEEP                    "true": sleep after installing (--sleep, default false)
//	DATASTORE_TYPE, ETCD_ENDPOINTS
//
// Call Validate after parsing: a malformed $CNI_MTU or $SLEEP is an error,
// not silently ignored.
func BindInstallFlags(fs *pflag.FlagSet, getenv func(string) string) *InstallCLI {
	if getenv == nil {
		getenv = os.Getenv
	}
	env := func(keys ...string) string {
		for _, k := range keys {
			if v := strings.TrimSpace(getenv(k)); v != "" {
				return v
			}
		}
		return ""
	}
	or := func(v, def string) string {
		if v == "" {
			return def
		}
		return v
	}
	c := &InstallCLI{}
	o := &c.Options
	node := env("KUBERNETES_NODE_NAME", "NODENAME")
	if node == "" {
		node, _ = os.Hostname()
	}
	// The template text is not trimmed: it is used as given.
	o.TemplateText = getenv("CNI_NETWORK_CONFIG")

	fs.StringVar(&o.BinDir, "cni-bin-dir", DefaultBinDir, "where the CNI binaries go")
	fs.StringVar(&o.NetDir, "cni-net-dir", or(env("CNI_NET_DIR"), DefaultNetDir), "where the conflist and kubeconfig go ($CNI_NET_DIR)")
	fs.StringVar(&o.Binary, "binary", "", "petrel binary to install (default: this one)")
	fs.StringVar(&c.templateFile, "template", env("CNI_NETWORK_CONFIG_FILE"), "conflist template file ($CNI_NETWORK_CONFIG_FILE; default: $CNI_NETWORK_CONFIG, else the built-in deploy/cni/10-petrel.conflist)")
	fs.StringVar(&o.ConflistName, "conflist-name", or(env("CNI_CONF_NAME"), DefaultConflistName), "file name of the conflist ($CNI_CONF_NAME)")
	fs.StringVar(&o.KubeconfigName, "kubeconfig-name", DefaultKubeconfigName, "file name of the kubeconfig in --cni-net-dir")
	fs.StringVar(&o.NodeName, "nodename", node, "this node's name ($KUBERNETES_NODE_NAME, $NODENAME, hostname)")
	fs.StringVar(&o.DatastoreType, "datastore-type", or(env("DATASTORE_TYPE"), "kubernetes"), "kubernetes or etcdv3 ($DATASTORE_TYPE)")
	fs.StringVar(&o.EtcdEndpoints, "etcd-endpoints", env("ETCD_ENDPOINTS"), "etcd URLs ($ETCD_ENDPOINTS)")
	fs.StringVar(&o.EtcdCACertFile, "etcd-ca-cert-file", env("ETCD_CA_CERT_FILE"), "etcd CA certificate to copy for the plugins ($ETCD_CA_CERT_FILE)")
	fs.StringVar(&o.EtcdCertFile, "etcd-cert-file", env("ETCD_CERT_FILE"), "etcd client certificate to copy for the plugins ($ETCD_CERT_FILE)")
	fs.StringVar(&o.EtcdKeyFile, "etcd-key-file", env("ETCD_KEY_FILE"), "its key ($ETCD_KEY_FILE)")
	fs.IntVar(&o.MTU, "mtu", 0, "pod MTU ($CNI_MTU; 0 = 1450)")
	fs.StringVar(&o.KubeconfigFrom, "kubeconfig-from", "", "copy this kubeconfig instead of building one from the service account")
	fs.StringVar(&o.ServiceAccountDir, "serviceaccount-dir", DefaultServiceAccountDir, "service account token and ca.crt")
	fs.BoolVar(&c.Sleep, "sleep", false, "sleep after installing, until terminated ($SLEEP; for a sidecar rather than an init container)")

	// Environment values that must parse: checked in Validate, where an
	// error can be returned, unless the flag was given.
	c.envMTU, c.envSleep = env("CNI_MTU"), env("SLEEP")
	c.fs = fs
	return c
}

// Validate applies $CNI_MTU and $SLEEP where their flags were not given
// and checks them. Call it after fs.Parse.
func (c *InstallCLI) Validate() error {
	if c.envMTU != "" && !c.fs.Changed("mtu") {
		mtu, err := strconv.Atoi(c.envMTU)
		if err != nil || mtu < 0 {
			return fmt.Errorf("install-cni: $CNI_MTU %q: want a number of bytes", c.envMTU)
		}
		c.Options.MTU = mtu
	}
	if c.envSleep != "" && !c.fs.Changed("sleep") {
		b, err := strconv.ParseBool(c.envSleep)
		if err != nil {
			return fmt.Errorf("install-cni: $SLEEP %q: want true or false", c.envSleep)
		}
		c.Sleep = b
	}
	if c.Options.MTU != 0 && (c.Options.MTU < 68 || c.Options.MTU > 65535) {
		return fmt.Errorf("install-cni: MTU %d: want 68..65535", c.Options.MTU)
	}
	if c.templateFile != "" {
		c.Options.Template = c.templateFile
	}
	return nil
}

// Run is `petrel install-cni`: validate, install, then, with Sleep (Calico's
// sidecar mode), stay up until SIGINT or SIGTERM.
func (c *InstallCLI) Run(ctx context.Context, out io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	o := c.Options
	o.Out = out
	if err := Install(o); err != nil {
		return err
	}
	if !c.Sleep {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(out, "installed; sleeping until terminated ($SLEEP=true)")
	<-ctx.Done()
	return nil
}
