package daemon

import (
	"context"
	"strings"

	"github.com/petrel-net/petrel/datastore"
)

// ignoredTarget is the part of kernel sync that takes ignoredInterfaces.
type ignoredTarget interface {
	SetIgnoredInterfaces(ctx context.Context, names []string) error
}

// ignoredInterfaces is BGPConfiguration spec.ignoredInterfaces, the
// node's object first, then default's.
func ignoredInterfaces(configs []*datastore.BGPConfiguration, node string) []string {
	const sep = "\x00" // no interface name holds it
	joined := nodeSetting(configs, node, func(s *datastore.BGPConfigurationSpec) string { return strings.Join(s.IgnoredInterfaces, sep) })
	if joined == "" {
		return nil
	}
	return strings.Split(joined, sep)
}

// ignoredReconciler applies ignoredInterfaces to kernel sync's protocol
// direct live, as confd re-renders BIRD's: no restart, no session reset.
type ignoredReconciler struct {
	kernel  ignoredTarget
	applied lastApplied[[]string]
}

func (r *ignoredReconciler) Name() string { return "ignoredInterfaces" }

func (r *ignoredReconciler) Reconcile(ctx context.Context, d *desired) error {
	return r.applied.apply(d.IgnoredInterfaces, func(names []string) error { return r.kernel.SetIgnoredInterfaces(ctx, names) })
}
