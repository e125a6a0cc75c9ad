package lab

import (
	"context"
	"fmt"
	"net"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/petrel-net/petrel/internal/netnsbuild"
	"github.com/petrel-net/petrel/internal/netnsrun"
)

// kubeAccess is where a lab's Kubernetes API is: an admin's kubeconfig,
// and the node whose namespace reaches the server (a Kubernetes lab's
// control plane, or the etcd node running a kube-apiserver).
func (s *State) kubeAccess() (kubeconfig, node string, err error) {
	switch {
	case s.Kube != nil:
		return s.Kube.Kubeconfig, s.Kube.ControlPlane, nil
	case s.KubeAPI != nil:
		return s.KubeAPI.Kubeconfig, s.KubeAPI.Node, nil
	}
	return "", "", fmt.Errorf("lab %s has no Kubernetes API (no kube-control-plane node, no label %s on its etcd node)", s.Name, LabelKubeAPIServer)
}

// KubeRest is the admin's client configuration for a lab's Kubernetes
// API. The API server is only reachable inside the lab's namespaces, and
// this process runs in the root one: each connection is made from a
// thread switched into the server's namespace (a socket stays in the
// namespace it was created in).
func KubeRest(s *State) (*rest.Config, error) {
	kubeconfig, node, err := s.kubeAccess()
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	nsPath := netnsbuild.Path(NSName(s.Name, node))
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := netnsrun.RunPath(nsPath, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	cfg.Timeout = 15 * time.Second
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

// KubeClient is an admin clientset for a Kubernetes lab (see KubeRest).
func KubeClient(s *State) (kubernetes.Interface, error) {
	cfg, err := KubeRest(s)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// readyz asks the API server whether it is ready.
func (k *kubeBuilder) readyz(ctx context.Context) error {
	if k.client == nil {
		c, err := KubeClient(&k.state)
		if err != nil {
			return err
		}
		k.client = c
	}
	return readyz(ctx, k.client)
}

// readyz asks the API server behind c whether it is ready.
func readyz(ctx context.Context, c kubernetes.Interface) error {
	body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("readyz: %w %s", err, body)
	}
	return nil
}
