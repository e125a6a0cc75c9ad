// Package kubernetes is the datastore.Backend for a Kubernetes cluster, as
// Calico's "kubernetes" datastore: resources are crd.projectcalico.org/v1
// custom resources (see deploy/crds), read and written with the dynamic
// client, and a petrel Node is the projectcalico.org/* annotations and the
// labels of the core v1 Node of the same name, so petrel and Calico agree on
// a cluster's nodes.
//
// Resource versions are the API server's; compare-and-swap is its optimistic
// concurrency on metadata.resourceVersion.
package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/petrel-net/petrel/datastore"
)

// Backend stores resources in a Kubernetes API server.
type Backend struct {
	dyn  dynamic.Interface
	core kubernetes.Interface
	// ctx ends every watch on Close.
	ctx    context.Context
	cancel context.CancelFunc
}

var _ datastore.Backend = (*Backend)(nil)

// New connects with the kubeconfig file at kubeconfigPath, or with the pod's
// service account when it is empty (in-cluster).
func New(kubeconfigPath string) (*Backend, error) {
	var cfg *rest.Config
	var err error
	if kubeconfigPath == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes: config: %w", err)
	}
	return NewForConfig(cfg)
}

// NewForConfig connects with a client config.
func NewForConfig(cfg *rest.Config) (*Backend, error) {
	cfg = rest.CopyConfig(cfg)
	// client-go's default (5 QPS, burst 10) throttles IPAM's CAS retry loops.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 50, 100
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "petrel"
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Backend{dyn: dyn, core: core, ctx: ctx, cancel: cancel}, nil
}

// Close ends the backend's watches.
func (b *Backend) Close() error {
	b.cancel()
	return nil
}

// resource is the cluster-scoped dynamic client of a CRD kind.
func (b *Backend) resource(kind datastore.Kind) (dynamic.ResourceInterface, error) {
	if _, err := datastore.New(kind); err != nil || kind == datastore.KindNode {
		return nil, fmt.Errorf("kubernetes: no custom resource for kind %q", kind)
	}
	gvr := schema.GroupVersionResource{Group: datastore.Group, Version: datastore.Version, Resource: kind.Plural()}
	return b.dyn.Resource(gvr), nil
}

func (b *Backend) Get(ctx context.Context, kind datastore.Kind, name string) (datastore.Object, error) {
	if kind == datastore.KindNode {
		n, err := b.core.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, mapErr("get", kind, name, err)
		}
		return nodeFromCore(n)
	}
	r, err := b.resource(kind)
	if err != nil {
		return nil, err
	}
	u, err := r.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, mapErr("get", kind, name, err)
	}
	return fromUnstructured(kind, u)
}

func (b *Backend) List(ctx context.Context, kind datastore.Kind) ([]datastore.Object, string, error) {
	if kind == datastore.KindNode {
		l, err := b.core.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, "", mapErr("list", kind, "", err)
		}
		return datastore.DecodeList(len(l.Items), l.ResourceVersion, func(i int) (datastore.Object, error) {
			return nodeFromCore(&l.Items[i])
		})
	}
	r, err := b.resource(kind)
	if err != nil {
		return nil, "", err
	}
	l, err := r.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", mapErr("list", kind, "", err)
	}
	return datastore.DecodeList(len(l.Items), l.GetResourceVersion(), func(i int) (datastore.Object, error) {
		return fromUnstructured(kind, &l.Items[i])
	})
}

// prepare finds a custom resource's client and converts the object for it.
func (b *Backend) prepare(obj datastore.Object) (dynamic.ResourceInterface, *unstructured.Unstructured, error) {
	r, err := b.resource(obj.Kind())
	if err != nil {
		return nil, nil, err
	}
	u, err := toUnstructured(obj)
	return r, u, err
}

func (b *Backend) Create(ctx context.Context, obj datastore.Object) (datastore.Object, error) {
	kind, name := obj.Kind(), obj.GetName()
	if kind == datastore.KindNode {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		applyNode(n, obj.(*datastore.Node))
		created, err := b.core.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return nil, mapErr("create", kind, name, err)
		}
		return nodeFromCore(created)
	}
	r, u, err := b.prepare(obj)
	if err != nil {
		return nil, err
	}
	// The server assigns these; a copied object (kubectl get -o yaml) has them.
	u.SetResourceVersion("")
	u.SetUID("")
	u.SetManagedFields(nil)
	created, err := r.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return nil, mapErr("create", kind, name, err)
	}
	return fromUnstructured(kind, created)
}

func (b *Backend) Update(ctx context.Context, obj datastore.Object) (datastore.Object, error) {
	kind, name, rv := obj.Kind(), obj.GetName(), obj.GetResourceVersion()
	// Without a resourceVersion the API server would overwrite blindly.
	if rv == "" {
		return nil, fmt.Errorf("kubernetes: update %s %q without a resourceVersion: %w", kind, name, datastore.ErrConflict)
	}
	if kind == datastore.KindNode {
		nodes := b.core.CoreV1().Nodes()
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, mapErr("update", kind, name, err)
		}
		if n.ResourceVersion != rv {
			return nil, fmt.Errorf("kubernetes: update %s %q at %s (stored %s): %w", kind, name, rv, n.ResourceVersion, datastore.ErrConflict)
		}
		// Keep everything else the Node has (spec, status, other
		// annotations); the server still checks rv, so a write in between
		// is a conflict.
		applyNode(n, obj.(*datastore.Node))
		n.ResourceVersion = rv
		updated, err := nodes.Update(ctx, n, metav1.UpdateOptions{})
		if err != nil {
			return nil, mapErr("update", kind, name, err)
		}
		return nodeFromCore(updated)
	}
	r, u, err := b.prepare(obj)
	if err != nil {
		return nil, err
	}
	updated, err := r.Update(ctx, u, metav1.UpdateOptions{})
	if err != nil {
		return nil, mapErr("update", kind, name, err)
	}
	return fromUnstructured(kind, updated)
}

func (b *Backend) Delete(ctx context.Context, kind datastore.Kind, name, resourceVersion string) error {
	var opts metav1.DeleteOptions
	if resourceVersion != "" {
		opts.Preconditions = &metav1.Preconditions{ResourceVersion: &resourceVersion}
	}
	var err error
	if kind == datastore.KindNode {
		err = b.core.CoreV1().Nodes().Delete(ctx, name, opts)
	} else {
		r, rerr := b.resource(kind)
		if rerr != nil {
			return rerr
		}
		err = r.Delete(ctx, name, opts)
	}
	return mapErr("delete", kind, name, err)
}

// Watch follows a kind from revision (a List's). The channel closes when
// the API server ends the watch, on an error event (e.g. 410 Gone after
// compaction), or when ctx or the backend ends: the caller re-lists.
func (b *Backend) Watch(ctx context.Context, kind datastore.Kind, revision string) (<-chan datastore.Event, error) {
	// "" would make the server replay every object as ADDED.
	if revision == "" {
		return nil, fmt.Errorf("kubernetes: watch %s: empty revision (use List's)", kind)
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(b.ctx, cancel)
	w, err := b.watch(ctx, kind, metav1.ListOptions{ResourceVersion: revision})
	if err != nil {
		stop()
		cancel()
		return nil, mapErr("watch", kind, "", err)
	}
	out := make(chan datastore.Event, 16)
	go func() {
		defer close(out)
		defer stop()
		defer cancel()
		defer w.Stop()
		relay(ctx, kind, w, out)
	}()
	return out, nil
}

// watch opens the API server's watch of a kind: core Nodes, or a CRD.
func (b *Backend) watch(ctx context.Context, kind datastore.Kind, opts metav1.ListOptions) (watch.Interface, error) {
	if kind == datastore.KindNode {
		return b.core.CoreV1().Nodes().Watch(ctx, opts)
	}
	r, err := b.resource(kind)
	if err != nil {
		return nil, err
	}
	return r.Watch(ctx, opts)
}

// relay passes w's events on to out, decoded, until w or ctx ends or the
// server sends an error event.
func relay(ctx context.Context, kind datastore.Kind, w watch.Interface, out chan<- datastore.Event) {
	nodes := nodeKeys{}
	for {
		var ev watch.Event
		var ok bool
		select {
		case ev, ok = <-w.ResultChan():
			if !ok {
				return
			}
		case <-ctx.Done():
			return
		}
		e, send, ok := translate(kind, ev, nodes)
		if !ok {
			return
		}
		if !send {
			continue
		}
		select {
		case out <- e:
		case <-ctx.Done():
			return
		}
	}
}

// translate turns an API server event into petrel's. send is false for
// events petrel need not see; ok is false for an error event (typically
// 410 Gone), which ends the watch so that the caller re-lists.
func translate(kind datastore.Kind, ev watch.Event, nodes nodeKeys) (e datastore.Event, send, ok bool) {
	var typ datastore.EventType
	switch ev.Type {
	case watch.Added:
		typ = datastore.Added
	case watch.Modified:
		typ = datastore.Modified
	case watch.Deleted:
		typ = datastore.Deleted
	case watch.Bookmark:
		return e, false, true
	default:
		return e, false, false
	}
	obj, bad := fromWatch(kind, ev.Object)
	if bad != nil {
		// One bad object must not end the watch (a re-list would find it
		// again): report it and go on.
		delete(nodes, bad.Name)
		return datastore.UndecodableEvent(typ, bad), true, true
	}
	if kind == datastore.KindNode && nodes.unchanged(typ, obj.(*datastore.Node)) {
		return e, false, true
	}
	return datastore.Event{Type: typ, Object: obj}, true, true
}

// nodeKeys remembers, by name, what petrel reads of each watched Node:
// core Nodes change for reasons petrel does not see (status, heartbeats).
type nodeKeys map[string]string

// unchanged records the event and reports whether it is a modification
// that leaves the petrel Node as it was (to be dropped).
func (k nodeKeys) unchanged(typ datastore.EventType, n *datastore.Node) bool {
	key := nodeKey(n)
	if typ == datastore.Modified && k[n.Name] == key {
		return true
	}
	if typ == datastore.Deleted {
		delete(k, n.Name)
	} else {
		k[n.Name] = key
	}
	return false
}

// fromWatch decodes a watched object; the error names the object.
func fromWatch(kind datastore.Kind, o runtime.Object) (datastore.Object, *datastore.DecodeError) {
	var obj datastore.Object
	var err error
	switch o := o.(type) {
	case *corev1.Node:
		obj, err = nodeFromCore(o)
	case *unstructured.Unstructured:
		obj, err = fromUnstructured(kind, o)
	default:
		err = fmt.Errorf("kubernetes: watch %s: unexpected object %T", kind, o)
	}
	if err == nil {
		return obj, nil
	}
	var bad *datastore.DecodeError
	if !errors.As(err, &bad) {
		name := ""
		if m, merr := meta.Accessor(o); merr == nil {
			name = m.GetName()
		}
		bad = datastore.NewDecodeError(kind, name, "", err)
	}
	return nil, bad
}

// toUnstructured converts through JSON, so the CR is exactly our JSON.
func toUnstructured(obj datastore.Object) (*unstructured.Unstructured, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: encode %s %q: %w", obj.Kind(), obj.GetName(), err)
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(js, &u.Object); err != nil {
		return nil, fmt.Errorf("kubernetes: encode %s %q: %w", obj.Kind(), obj.GetName(), err)
	}
	u.SetAPIVersion(datastore.APIVersion)
	u.SetKind(string(obj.Kind()))
	return u, nil
}

// fromUnstructured decodes leniently: a cluster's objects may carry fields
// (Calico's newer ones) that petrel does not model.
func fromUnstructured(kind datastore.Kind, u *unstructured.Unstructured) (datastore.Object, error) {
	js, err := u.MarshalJSON()
	if err != nil {
		return nil, datastore.NewDecodeError(kind, u.GetName(), "", err)
	}
	obj, err := datastore.New(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(js, obj); err != nil {
		return nil, datastore.NewDecodeError(kind, u.GetName(), "", err)
	}
	obj.SetManagedFields(nil) // server bookkeeping, noise to petrel
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: datastore.Group, Version: datastore.Version, Kind: string(kind)})
	return obj, nil
}

// mapErr wraps API errors in the datastore's sentinels, keeping the cause.
func mapErr(op string, kind datastore.Kind, name string, err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	case apierrors.IsNotFound(err):
		sentinel = datastore.ErrNotFound
	case apierrors.IsAlreadyExists(err):
		sentinel = datastore.ErrExists
	case apierrors.IsConflict(err):
		sentinel = datastore.ErrConflict
	}
	if name != "" {
		op = fmt.Sprintf("%s %s %q", op, kind, name)
	} else {
		op = fmt.Sprintf("%s %s", op, kind)
	}
	if sentinel != nil {
		return fmt.Errorf("kubernetes: %s: %w: %w", op, sentinel, err)
	}
	return fmt.Errorf("kubernetes: %s: %w", op, err)
}
