package cni

import (
	"strings"
	"testing"

	"github.com/petrel-net/petrel/workload"
)

func TestLoadConfErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		conf, field string
	}{
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam"}, "mtu": "big"}`, `"mtu"`},
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam"}, "mtu": 20}`, `"mtu"`},
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam"}, "datastore_type": "consul"}`, `"datastore_type"`},
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam"}, "datastore_type": "etcdv3"}`, `"etcd_endpoints"`},
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam"}, "etcd_endpoints": 5}`, `"etcd_endpoints"`},
		{`{"type": "petrel-cni"}`, `"ipam.type"`},
		{`{"ipam": {"type": "petrel-ipam"}}`, `"type"`},
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam"}, "kubernetes": {"kubeconfig": 1}}`, `kubernetes.kubeconfig`},
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam", "assign_ipv6": "yes"}}`, `"ipam.assign_ipv6"`},
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam", "assign_ipv4": true}}`, `ipam.assign_ipv4`},
		{`{"type": "petrel-cni", "ipam": {"type": "petrel-ipam", "assign_ipv4": "false"}}`, `"ipam.assign_ipv4" and "ipam.assign_ipv6"`},
	} {
		_, err := LoadConf([]byte(tc.conf), true)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("LoadConf(%s) = %v, want an error naming %s", tc.conf, err, tc.field)
		}
	}
	if _, err := LoadConf([]byte(`{"type": `), true); err == nil || !strings.Contains(err.Error(), "JSON") {
		t.Errorf("truncated config: %v", err)
	}
}

func TestLoadConfDefaults(t *testing.T) {
	t.Setenv("NODENAME", "")
	c, err := LoadConf([]byte(`{"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "petrel-cni",
		"etcd_endpoints": "http://127.0.0.1:2379", "nodename": "__NODENAME__", "ipam": {"type": "petrel-ipam"}}`), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.MTU != 1450 || c.DatastoreType != "etcdv3" || c.Nodename == "" || c.Nodename == NodenamePlaceholder || c.IPAM.Type != IPAMName {
		t.Errorf("defaults: %+v", c)
	}
	c, err = LoadConf([]byte(`{"type": "petrel-ipam", "nodename": "n1", "mtu": 1400, "kubernetes": {"kubeconfig": "/k"}}`), false)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Datastore()
	if c.Nodename != "n1" || c.MTU != 1400 || s.Type != "kubernetes" || s.Kubeconfig != "/k" {
		t.Errorf("explicit values: %+v %+v", c, s)
	}
}

// TestLoadConfFamilies: Calico's ipam.assign_ipv4 and assign_ipv6, strings
// defaulting to "true" and "false".
func TestLoadConfFamilies(t *testing.T) {
	for _, tc := range []struct {
		ipam string
		want workload.Families
	}{
		{`{"type": "petrel-ipam"}`, workload.IPv4Only},
		{`{"type": "petrel-ipam", "assign_ipv4": "true"}`, workload.IPv4Only},
		{`{"type": "petrel-ipam", "assign_ipv6": "true"}`, workload.DualStack},
		{`{"type": "petrel-ipam", "assign_ipv4": "true", "assign_ipv6": "true"}`, workload.DualStack},
		{`{"type": "petrel-ipam", "assign_ipv4": "false", "assign_ipv6": "true"}`, workload.Families{IPv6: true}},
		{`{"type": "petrel-ipam", "assign_ipv6": "false"}`, workload.IPv4Only},
	} {
		c, err := LoadConf([]byte(`{"type": "petrel-cni", "nodename": "n1", "ipam": `+tc.ipam+`}`), true)
		if err != nil {
			t.Errorf("ipam %s: %v", tc.ipam, err)
			continue
		}
		if c.IPAM.Families != tc.want || c.IPAM.Type != IPAMName {
			t.Errorf("ipam %s: families %+v type %q, want %+v", tc.ipam, c.IPAM.Families, c.IPAM.Type, tc.want)
		}
	}
}

func TestPodIdentity(t *testing.T) {
	ns, pod := PodIdentity("IgnoreUnknown=1;K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1;K8S_POD_INFRA_CONTAINER_ID=abc", "abc")
	if ns != "kube-system" || pod != "coredns-1" {
		t.Errorf("got %s/%s", ns, pod)
	}
	ns, pod = PodIdentity("", "c0ffee")
	if ns != "default" || pod != "c0ffee" {
		t.Errorf("defaults: got %s/%s", ns, pod)
	}
}

func TestRole(t *testing.T) {
	for argv0, want := range map[string]string{
		"/opt/cni/bin/petrel-cni": PluginName, "petrel-ipam": IPAMName, "/usr/bin/petrel": "", "petrel-cni.old": "",
	} {
		if got := Role(argv0); got != want {
			t.Errorf("Role(%q) = %q, want %q", argv0, got, want)
		}
	}
}
