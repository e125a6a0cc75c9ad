package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// KubeAPIServiceRange is the cluster IP range of the kube-apiserver an
// etcd lab runs (label kube-apiserver): a BGPConfiguration's
// serviceClusterIPs names it to advertise the cluster IPs.
const KubeAPIServiceRange = "10.96.0.0/24"

// kubeAPIPort is where that kube-apiserver listens, on the etcd node's
// address.
const kubeAPIPort = 6443

// KubeAPIState is the kube-apiserver an etcd lab runs beside its etcd.
type KubeAPIState struct {
	Node       string `json:"node"`       // the etcd node, in whose namespace it runs
	Server     string `json:"server"`     // its URL
	Kubeconfig string `json:"kubeconfig"` // an admin's (system:masters); the daemons use it too
}

// resources is what the etcd node's resources file holds, read before
// anything is built: Calico's resources (YAML for petrel apply) and the
// Kubernetes objects.
type resources struct {
	file   string
	calico string
	kube   []*unstructured.Unstructured
}

// loadResources reads the file the etcd node's resources label names,
// relative to the topology file, and checks that a Kubernetes object has a
// kube-apiserver to go to.
func loadResources(topoPath string, topo *Topology) (*resources, error) {
	for _, name := range topo.NodeNames() {
		n := topo.Topology.Nodes[name]
		file := n.Labels[LabelResources]
		if n.Role() != "etcd" || file == "" {
			continue
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(filepath.Dir(topoPath), file)
		}
		objs, err := readManifestFile(file)
		if err != nil {
			return nil, fmt.Errorf("node %s: label %s: %w", name, LabelResources, err)
		}
		r := &resources{file: file}
		for i, u := range objs {
			if strings.HasPrefix(u.GetAPIVersion(), "projectcalico.org/") {
				doc, err := yaml.Marshal(u.Object)
				if err != nil {
					return nil, fmt.Errorf("%s object %d: %w", file, i, err)
				}
				r.calico += "---\n" + string(doc)
				continue
			}
			if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
				return nil, fmt.Errorf("%s object %d: want apiVersion, kind and metadata.name", file, i)
			}
			if !n.KubeAPIServer() {
				return nil, fmt.Errorf("%s: %s %s: a Kubernetes object needs a kube-apiserver (label %s: \"true\" on node %s)", file, u.GetKind(), u.GetName(), LabelKubeAPIServer, name)
			}
			r.kube = append(r.kube, u)
		}
		return r, nil
	}
	return &resources{}, nil
}

// startKubeAPIServer runs a kube-apiserver on the etcd node n, storing in
// the lab's etcd (beside Calico's /calico keys), with certificates from a
// CA of the lab's, and waits until it is ready. The petrel daemons get its
// admin kubeconfig as KUBECONFIG.
func (b *builder) startKubeAPIServer(ctx context.Context, n *NodeState) error {
	bin, err := KubeBinary("kube-apiserver")
	if err != nil {
		return err
	}
	addr := netip.MustParsePrefix(n.Addr).Addr()
	p, err := newPKI(filepath.Join(b.dir, "pki"))
	if err != nil {
		return err
	}
	if err := p.issue("apiserver", "kube-apiserver", nil, net.IP(addr.AsSlice()), net.ParseIP("127.0.0.1")); err != nil {
		return err
	}
	server := "https://" + net.JoinHostPort(addr.String(), strconv.Itoa(kubeAPIPort))
	kubeconfig := p.path("admin.kubeconfig")
	if err := p.kubeconfig(kubeconfig, server, "admin", "system:masters"); err != nil {
		return err
	}
	b.state.KubeAPI = &KubeAPIState{Node: n.Name, Server: server, Kubeconfig: kubeconfig}
	if err := b.save(); err != nil {
		return err
	}
	b.step("starting kube-apiserver on %s (%s, Service range %s)", n.Name, server, KubeAPIServiceRange)
	api, err := b.startProc(n, "kube-apiserver", nil, bin,
		"--etcd-servers="+b.state.EtcdURL,
		"--bind-address="+addr.String(), "--advertise-address="+addr.String(), "--secure-port="+strconv.Itoa(kubeAPIPort),
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.key"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range="+KubeAPIServiceRange,
		"--authorization-mode=RBAC")
	if err != nil {
		return err
	}
	c, err := KubeClient(&b.state)
	if err != nil {
		return err
	}
	if err := waitFor(api, "kube-apiserver", 90*time.Second, func() error { return readyz(ctx, c) }); err != nil {
		return err
	}
	b.step("kube-apiserver ready; kubectl: ip netns exec %s kubectl --kubeconfig %s", n.NS, kubeconfig)
	return nil
}

// applyKubeObjects applies the resources file's Kubernetes objects.
func (b *builder) applyKubeObjects(ctx context.Context) error {
	if len(b.res.kube) == 0 {
		return nil
	}
	var names []string
	for _, u := range b.res.kube {
		names = append(names, u.GetKind()+" "+u.GetName())
	}
	b.step("applying %s to the kube-apiserver (%s)", strings.Join(names, ", "), b.res.file)
	return applyManifests(ctx, &b.state, b.res.kube, b.opts.Out)
}

// waitLoadBalancers waits until every LoadBalancer Service of the
// resources file has an address (a petrel daemon assigns them from an
// IPPool with allowedUses [LoadBalancer]) and says which.
func (b *builder) waitLoadBalancers(ctx context.Context) error {
	var lbs []*unstructured.Unstructured
	for _, u := range b.res.kube {
		if t, _, _ := unstructured.NestedString(u.Object, "spec", "type"); u.GetKind() == "Service" && t == "LoadBalancer" {
			lbs = append(lbs, u)
		}
	}
	if len(lbs) == 0 {
		return nil
	}
	c, err := KubeClient(&b.state)
	if err != nil {
		return err
	}
	b.step("waiting for the LoadBalancer addresses")
	for _, u := range lbs {
		ns := u.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		var ips []string
		err := poll(60*time.Second, 250*time.Millisecond, func() error {
			svc, err := c.CoreV1().Services(ns).Get(ctx, u.GetName(), metav1.GetOptions{})
			if err != nil {
				return err
			}
			ips = ips[:0]
			for _, in := range svc.Status.LoadBalancer.Ingress {
				ips = append(ips, in.IP)
			}
			if len(ips) == 0 {
				return fmt.Errorf("Service %s/%s has no LoadBalancer address (is there an IPPool with allowedUses: [LoadBalancer]?)", ns, u.GetName())
			}
			return nil
		})
		if err != nil {
			return err
		}
		b.step("Service %s/%s: LoadBalancer address %s", ns, u.GetName(), strings.Join(ips, ", "))
	}
	return nil
}
