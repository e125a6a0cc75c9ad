// Package cni is petrel's CNI plugin pair, the counterpart of Calico's
// `calico` and `calico-ipam` binaries, and install-cni, which puts them on
// a node. The petrel binary takes the plugin's role when invoked as
// petrel-cni or petrel-ipam (see Role).
//
// petrel-cni delegates address management to the plugin named in its
// config's ipam.type (normally petrel-ipam, found on CNI_PATH) with
// invoke.DelegateAdd/DelegateDel/DelegateCheck, as Calico does; it then
// plumbs the pod with the dataplane package. Both share their logic with
// `petrel workload add/del` through package workload.
package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/petrel-net/petrel/datastore/backends"
	"github.com/petrel-net/petrel/datastore/etcd"
	"github.com/petrel-net/petrel/workload"
)

// Binary names: the role the petrel binary plays when invoked by them.
const (
	PluginName = "petrel-cni"
	IPAMName   = "petrel-ipam"
)

// NodenamePlaceholder is what the conflist template holds until
// install-cni fills in the node's name.
const NodenamePlaceholder = "__NODENAME__"

// NetworkName is the network of the conflist install-cni writes.
const NetworkName = "k8s-pod-network"

// PodIfName is the only pod interface the dataplane makes.
const PodIfName = "eth0"

// NetConf is one plugin entry of the conflist (Calico's keys).
type NetConf struct {
	types.PluginConf
	// IPAM shadows PluginConf.IPAM to read Calico's ipam keys too.
	IPAM          IPAMConf `json:"ipam"`
	DatastoreType string   `json:"datastore_type"`
	EtcdEndpoints string   `json:"etcd_endpoints"`
	// Calico's etcd TLS keys: paths on the host (install-cni copies the
	// files there from the calico-etcd-secrets mount).
	EtcdCACertFile string `json:"etcd_ca_cert_file"`
	EtcdCertFile   string `json:"etcd_cert_file"`
	EtcdKeyFile    string `json:"etcd_key_file"`
	Nodename       string `json:"nodename"`
	MTU            int    `json:"mtu"`
	LogLevel       string `json:"log_level"`
	Kubernetes     struct {
		Kubeconfig string `json:"kubeconfig"`
	} `json:"kubernetes"`
	Policy struct {
		Type string `json:"type"`
	} `json:"policy"`
}

// IPAMConf is the conflist's ipam section: the delegate's type and
// Calico's assign_ipv4 / assign_ipv6, the strings "true" or "false"
// (defaults "true" and "false").
type IPAMConf struct {
	types.IPAM
	AssignIPv4 *string `json:"assign_ipv4,omitempty"`
	AssignIPv6 *string `json:"assign_ipv6,omitempty"`
	// Families is what AssignIPv4 and AssignIPv6 ask for (set by LoadConf).
	Families workload.Families `json:"-"`
}

// families parses assign_ipv4 and assign_ipv6.
func (c *IPAMConf) families() (workload.Families, error) {
	f := workload.IPv4Only
	for _, k := range []struct {
		field string
		val   *string
		set   *bool
	}{{"assign_ipv4", c.AssignIPv4, &f.IPv4}, {"assign_ipv6", c.AssignIPv6, &f.IPv6}} {
		if k.val == nil {
			continue
		}
		switch *k.val {
		case "true":
			*k.set = true
		case "false":
			*k.set = false
		default:
			return f, fmt.Errorf(`config: field "ipam.%s" is %q: want "true" or "false"`, k.field, *k.val)
		}
	}
	if !f.IPv4 && !f.IPv6 {
		return f, errors.New(`config: fields "ipam.assign_ipv4" and "ipam.assign_ipv6" are both "false": no address family to assign`)
	}
	return f, nil
}

// LoadConf parses and checks a plugin's config (stdin). needIPAM says
// ipam.type must be set (petrel-cni delegates to it; petrel-ipam does not).
// Errors name the offending field.
func LoadConf(data []byte, needIPAM bool) (*NetConf, error) {
	c := &NetConf{}
	if err := json.Unmarshal(data, c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("config: field %q: want %s, got a JSON %s", te.Field, te.Type, te.Value)
		}
		return nil, fmt.Errorf("config: not valid JSON: %w", err)
	}
	if c.Type == "" {
		return nil, errors.New(`config: field "type" is missing`)
	}
	if needIPAM && c.IPAM.Type == "" {
		return nil, errors.New(`config: field "ipam.type" is missing (want {"type": "petrel-ipam"})`)
	}
	f, err := c.IPAM.families()
	if err != nil {
		return nil, err
	}
	c.IPAM.Families = f
	switch c.DatastoreType {
	case "":
		c.DatastoreType = "kubernetes"
		if c.EtcdEndpoints != "" {
			c.DatastoreType = "etcdv3"
		}
	case "kubernetes", "etcdv3":
	default:
		return nil, fmt.Errorf(`config: field "datastore_type" is %q: want "kubernetes" or "etcdv3"`, c.DatastoreType)
	}
	if c.DatastoreType == "etcdv3" && c.EtcdEndpoints == "" {
		return nil, errors.New(`config: field "etcd_endpoints" is required with datastore_type "etcdv3"`)
	}
	switch {
	case c.MTU == 0:
		c.MTU = workload.DefaultMTU
	case c.MTU < 68 || c.MTU > 65535:
		return nil, fmt.Errorf(`config: field "mtu" is %d: want 68..65535`, c.MTU)
	}
	if c.Nodename == "" || c.Nodename == NodenamePlaceholder {
		c.Nodename = os.Getenv("NODENAME")
	}
	if c.Nodename == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf(`config: field "nodename" is not set and the hostname is unknown: %v`, err)
		}
		c.Nodename = h
	}
	return c, nil
}

// Datastore is the backend the config points at.
func (c *NetConf) Datastore() backends.Settings {
	return backends.Settings{
		Type: c.DatastoreType,
		Etcd: etcd.Config{
			// Calico's plugin config has no etcd user or password: the
			// plugins authenticate by client certificate.
			Endpoints: c.EtcdEndpoints, CACertFile: c.EtcdCACertFile, CertFile: c.EtcdCertFile, KeyFile: c.EtcdKeyFile,
		},
		Kubeconfig: c.Kubernetes.Kubeconfig,
	}
}

// PodIdentity is the pod's namespace and name from CNI_ARGS
// (K8S_POD_NAMESPACE, K8S_POD_NAME); without them the namespace is
// "default" and the pod is named after the container.
func PodIdentity(cniArgs, containerID string) (namespace, pod string) {
	for _, kv := range strings.Split(cniArgs, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "K8S_POD_NAMESPACE":
			namespace = strings.TrimSpace(v)
		case "K8S_POD_NAME":
			pod = strings.TrimSpace(v)
		}
	}
	if namespace == "" {
		namespace = "default"
	}
	if pod == "" {
		pod = containerID
	}
	return namespace, pod
}
