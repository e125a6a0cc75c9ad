// Package secrets reads BGP passwords from Kubernetes Secrets, as
// calico-node does: only Secrets in the agent's own namespace (RBAC grants
// get/list/watch there and nowhere else), followed live so that a rotated
// password reaches the session that uses it. It never logs or returns a
// Secret's contents except the one value asked for.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// DefaultNamespace is where calico-node runs, when the pod does not say
// (the DaemonSet passes its namespace in POD_NAMESPACE).
const DefaultNamespace = "kube-system"

// Namespace is the namespace whose Secrets hold BGP passwords.
func Namespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return DefaultNamespace
}

// Watcher holds the Secrets of one namespace, kept current by a shared
// informer (no resync: watch events are enough).
type Watcher struct {
	namespace string
	lister    listers.SecretNamespaceLister
	synced    cache.InformerSynced
}

// Start begins following namespace's Secrets; onChange runs after every
// add, update and delete (the first list included). It does not wait for
// that list: see WaitSynced.
func Start(ctx context.Context, client kubernetes.Interface, namespace string, onChange func()) (*Watcher, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace))
	inf := factory.Core().V1().Secrets()
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { onChange() },
		UpdateFunc: func(old, cur any) { changed(old, cur, onChange) },
		DeleteFunc: func(any) { onChange() },
	}); err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	w := &Watcher{namespace: namespace, lister: inf.Lister().Secrets(namespace), synced: inf.Informer().HasSynced}
	factory.Start(ctx.Done())
	return w, nil
}

// WaitSynced waits at most timeout for the first list of Secrets; until
// it arrives, passwords are reported missing.
func (w *Watcher) WaitSynced(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if !cache.WaitForCacheSync(ctx.Done(), w.synced) {
		return fmt.Errorf("secrets: no list of Secrets in namespace %q within %s (RBAC: get, list, watch on secrets there?)", w.namespace, timeout)
	}
	return nil
}

// changed calls onChange unless only the resource version moved (an
// informer relist).
func changed(old, cur any, onChange func()) {
	o, ok1 := old.(*corev1.Secret)
	c, ok2 := cur.(*corev1.Secret)
	if ok1 && ok2 && o.ResourceVersion == c.ResourceVersion {
		return
	}
	onChange()
}

// Password returns key of Secret name: a missing Secret or key is an error
// that names them (never the value).
func (w *Watcher) Password(name, key string) (string, error) {
	s, err := w.lister.Get(name)
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("Secret %q not found in namespace %q", name, w.namespace)
	case err != nil:
		return "", fmt.Errorf("Secret %q in namespace %q: %w", name, w.namespace, err)
	}
	v, ok := s.Data[key]
	if !ok {
		if sv, ok := s.StringData[key]; ok {
			return sv, nil
		}
		return "", fmt.Errorf("Secret %q in namespace %q has no key %q", name, w.namespace, key)
	}
	if len(v) == 0 {
		return "", errors.New("key " + key + " of Secret " + name + " is empty")
	}
	return string(v), nil
}
