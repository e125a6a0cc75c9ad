package daemon

import (
	"context"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/petrel-net/petrel/secrets"
)

// secretWait bounds how long a starting node waits for the first list of
// Secrets: a peer whose password is not known yet is added once it is.
const secretWait = 2 * time.Second

// startSecrets follows the Secrets of petrel's namespace, as calico-node
// does for BGPPeer and mesh passwords, and returns the resolver the mesh
// uses; a changed Secret runs onChange, so a rotated password reaches its
// session (and only that one is reset). Without a Kubernetes API there is
// no resolver: peers that need a password are skipped and named.
func startSecrets(ctx context.Context, client kubernetes.Interface, onChange func(), log *slog.Logger) func(name, key string) (string, error) {
	if client == nil {
		return nil
	}
	ns := secrets.Namespace()
	w, err := secrets.Start(ctx, client, ns, onChange)
	if err != nil {
		log.Error("BGP passwords from Secrets unavailable", "namespace", ns, "err", err)
		return nil
	}
	if err := w.WaitSynced(ctx, secretWait); err != nil {
		log.Warn("BGP passwords not read yet; peers that need one wait for them", "err", err)
	}
	return w.Password
}
