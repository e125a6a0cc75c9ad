package services

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaseName is the Lease that elects the one node agent assigning
// LoadBalancer addresses.
const LeaseName = "petrel-loadbalancer-assigner"

// elect campaigns for the Lease until ctx ends, assigning while it holds
// it. The Lease is released on a clean stop, so a restarting agent hands
// over at once instead of after the lease duration.
func (a *assigner) elect(ctx context.Context) {
	ns := a.c.opts.LeaseNamespace
	if ns == "" {
		ns = "kube-system"
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: ns},
		Client:     a.c.opts.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: a.c.opts.Node},
	}
	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock: lock, Name: LeaseName, ReleaseOnCancel: true,
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: a.lead,
				OnStoppedLeading: func() { a.c.log.Info("not assigning LoadBalancer addresses (Lease not held)") },
			},
		})
	}
}
