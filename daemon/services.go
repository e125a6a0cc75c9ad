package daemon

import (
	"context"
	"log/slog"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/ipam"
	"github.com/petrel-net/petrel/services"
)

// startServices starts Service advertisement and LoadBalancer address
// assignment (package services) when the Kubernetes API is reachable
// (client not nil), in both datastore modes, as calico-node does. Without
// one, Services are off and the log says so once. It returns
// what the services reconciler hands the BGPConfiguration's Service
// fields to (nil when Services are off).
func startServices(ctx context.Context, a *agent, client kubernetes.Interface, b datastore.Backend, node string, log *slog.Logger) serviceTarget {
	if client == nil {
		log.Info("Service advertisement off: no Kubernetes API (KUBECONFIG or in-cluster)")
		return nil
	}
	return services.Start(ctx, services.Options{
		Client: client, Node: node, IPAM: ipam.New(b), Logger: log,
		Advertise: func(adv services.Advertisement) {
			// Ranges first: a route another node advertises inside them
			// leaves the kernel before ours goes out.
			if a.kernel != nil {
				a.kernel.SetNotProgrammed(adv.Ranges)
			}
			if err := a.speaker.SetServices(ctx, adv.Prefixes, adv.Ranges); err != nil {
				log.Error("advertising Service prefixes", "err", err)
			}
		},
	})
}

// serviceTarget is the Service controller: it advertises what the
// Services and their endpoints ask for, within the configured ranges.
type serviceTarget interface {
	SetConfig(cfg services.Config)
	// Ready is closed once the first advertisement is out.
	Ready() <-chan struct{}
}

// serviceReconciler hands the default BGPConfiguration's Service fields to
// the controller, which does the rest on its own informers.
type serviceReconciler struct {
	controller serviceTarget
	applied    lastApplied[services.Config]
}

func (r *serviceReconciler) Name() string { return "services" }

func (r *serviceReconciler) Reconcile(_ context.Context, d *desired) error {
	return r.applied.apply(d.Services, func(cfg services.Config) error {
		r.controller.SetConfig(cfg)
		return nil
	})
}

// kubeClient connects to the Kubernetes API named by $KUBECONFIG, else the
// pod's service account.
func kubeClient() (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if path := os.Getenv("KUBECONFIG"); path != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = 50, 100, "petrel"
	return kubernetes.NewForConfig(cfg)
}
