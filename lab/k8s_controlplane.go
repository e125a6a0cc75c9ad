package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"
)

// apiserverPort is the API server's port: the `kubernetes` Service's own
// port, so that with no kube-proxy its ClusterIP:port is the server itself
// (see serviceRange).
const apiserverPort = 443

// serviceRange is the Service range: the /29 whose first address is the
// control plane's. There is no kube-proxy in the lab, and the `kubernetes`
// Service gets the range's first address as ClusterIP: pods (install-cni,
// the petrel daemon: in-cluster configuration) then reach the API server
// at the address they are given.
func serviceRange(cp netip.Addr) (netip.Prefix, error) {
	p := netip.PrefixFrom(cp, 29).Masked()
	if p.Addr().Next() != cp {
		return p, fmt.Errorf("the control plane's address %s must be the first of a /29 (like 10.0.0.1): it doubles as the kubernetes Service's ClusterIP (the lab has no kube-proxy)", cp)
	}
	return p, nil
}

// startControlPlane runs etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler in the control plane's namespace, with certificates from
// the lab's CA, and waits until the API server is ready.
func (k *kubeBuilder) startControlPlane(ctx context.Context, n *NodeState) error {
	if n.Addr == "" {
		return fmt.Errorf("kube-control-plane %s has no IPv4 address (exec: [ip addr add ...])", n.Name)
	}
	cp := netip.MustParsePrefix(n.Addr).Addr()
	svc, err := serviceRange(cp)
	if err != nil {
		return err
	}
	bins := map[string]string{}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"} {
		if bins[c], err = KubeBinary(c); err != nil {
			return err
		}
	}
	p := k.pki
	if err := p.issue("apiserver", "kube-apiserver", nil, net.IP(cp.AsSlice()), net.ParseIP("127.0.0.1")); err != nil {
		return err
	}
	if err := p.issue("apiserver-kubelet", "kube-apiserver-kubelet-client", []string{"system:masters"}); err != nil {
		return err
	}
	server := "https://" + net.JoinHostPort(cp.String(), strconv.Itoa(apiserverPort))
	kcs := map[string]string{}
	for _, u := range [][2]string{{"admin", "system:masters"}, {"system:kube-controller-manager", ""}, {"system:kube-scheduler", ""}} {
		path := filepath.Join(p.dir, filepath.Base(u[0])+".kubeconfig")
		var orgs []string
		if u[1] != "" {
			orgs = []string{u[1]}
		}
		if err := p.kubeconfig(path, server, u[0], orgs...); err != nil {
			return err
		}
		kcs[u[0]] = path
	}
	k.state.Kube.Server, k.state.Kube.Kubeconfig = server, kcs["admin"]

	k.step("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler on %s (%s)", n.Name, server)
	if _, err := k.startProc(n, "etcd", nil, etcdArgs(filepath.Join(k.dir, "etcd"), "http://127.0.0.1:2379")...); err != nil {
		return err
	}
	api, err := k.startProc(n, "kube-apiserver", nil, bins["kube-apiserver"],
		"--etcd-servers=http://127.0.0.1:2379",
		"--advertise-address="+cp.String(), "--secure-port="+strconv.Itoa(apiserverPort),
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--kubelet-client-certificate="+p.path("apiserver-kubelet.crt"), "--kubelet-client-key="+p.path("apiserver-kubelet.key"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.key"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range="+svc.String(),
		"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true")
	if err != nil {
		return err
	}
	if err := k.save(); err != nil {
		return err
	}
	if err := waitFor(api, "kube-apiserver", 90*time.Second, func() error { return k.readyz(ctx) }); err != nil {
		return err
	}
	cm := kcs["system:kube-controller-manager"]
	if _, err := k.startProc(n, "kube-controller-manager", nil, bins["kube-controller-manager"],
		"--kubeconfig="+cm, "--authentication-kubeconfig="+cm, "--authorization-kubeconfig="+cm,
		"--service-account-private-key-file="+p.path("sa.key"), "--root-ca-file="+p.path("ca.crt"),
		"--use-service-account-credentials=true", "--leader-elect=false", "--bind-address=127.0.0.1",
		// It creates this directory; by default /usr/libexec/kubernetes/... on the host.
		"--flex-volume-plugin-dir="+filepath.Join(k.dir, "flexvolume")); err != nil {
		return err
	}
	sc := kcs["system:kube-scheduler"]
	_, err = k.startProc(n, "kube-scheduler", nil, bins["kube-scheduler"],
		"--kubeconfig="+sc, "--authentication-kubeconfig="+sc, "--authorization-kubeconfig="+sc,
		"--leader-elect=false", "--bind-address=127.0.0.1")
	return err
}
