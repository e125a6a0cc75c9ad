package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/petrel-net/petrel/internal/testenv/kubeapi"
)

// manifestObject is one object of a manifest file.
type manifestObject struct {
	*unstructured.Unstructured
	file string
}

// manifestObjects reads every object of the given YAML files.
func manifestObjects(t *testing.T, files ...string) []manifestObject {
	t.Helper()
	var objs []manifestObject
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if len(u.Object) == 0 {
				continue // only comments
			}
			if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
				t.Fatalf("%s document %d: no kind, apiVersion or name", f, i)
			}
			objs = append(objs, manifestObject{u, f})
		}
	}
	return objs
}

// TestManifestsAcceptedByAPIServer creates every object of
// k8s/petrel-node.yaml and crds/*.yaml on a real kube-apiserver with
// server-side dry-run and strict field validation: schema errors, unknown
// fields, bad references the API server checks and admission failures
// show here rather than on a cluster. Objects that already exist (the CRDs,
// which kubeapi installs) are dry-run server-side applied instead.
func TestManifestsAcceptedByAPIServer(t *testing.T) {
	env := kubeapi.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	dyn, err := dynamic.NewForConfig(env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	disco, err := discovery.NewDiscoveryClientForConfig(env.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))

	// kube-system is made by the API server's bootstrap controller, which
	// may not have run yet: make it if it is missing.
	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	if _, err := dyn.Resource(nsGVR).Get(ctx, "kube-system", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		ns := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "kube-system"},
		}}
		if _, err := dyn.Resource(nsGVR).Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}

	crds, err := filepath.Glob("crds/*.yaml")
	if err != nil || len(crds) == 0 {
		t.Fatalf("no CRDs: %v", err)
	}
	objs := manifestObjects(t, append([]string{"k8s/petrel-node.yaml"}, crds...)...)
	kinds := map[string]int{}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		kinds[gvk.Kind]++
		what := gvk.Kind + " " + o.GetName() + " (" + o.file + ")"
		if err := dryRunCreate(ctx, dyn, mapper, o.Unstructured); err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		t.Logf("%s: accepted", what)
	}
	for _, k := range []string{"ConfigMap", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "DaemonSet", "CustomResourceDefinition"} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the manifests", k)
		}
	}
	if kinds["CustomResourceDefinition"] != len(crds) {
		t.Errorf("%d CRDs in %d files", kinds["CustomResourceDefinition"], len(crds))
	}

	// A dry run leaves nothing behind.
	dsGVR := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	if _, err := dyn.Resource(dsGVR).Namespace("kube-system").Get(ctx, "petrel-node", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after a dry run, the DaemonSet: %v", err)
	}

	// The check has teeth: strict validation rejects a misspelt field.
	for _, o := range objs {
		if o.GetKind() != "DaemonSet" {
			continue
		}
		bad := o.DeepCopy()
		if err := unstructured.SetNestedField(bad.Object, true, "spec", "template", "spec", "hostNetwrok"); err != nil {
			t.Fatal(err)
		}
		if err := dryRunCreate(ctx, dyn, mapper, bad); err == nil {
			t.Error("a DaemonSet with a misspelt field was accepted: the dry run checks nothing")
		}
	}
}

// dryRunCreate creates u with server-side dry-run and strict field
// validation; if it exists already, it server-side applies it, dry-run.
func dryRunCreate(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, u *unstructured.Unstructured) error {
	gvk := u.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("the API server does not serve %s: %w", gvk, err)
	}
	var r dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if u.GetNamespace() == "" {
			return errors.New("namespaced, but the manifest names no namespace")
		}
		r = dyn.Resource(m.Resource).Namespace(u.GetNamespace())
	} else if u.GetNamespace() != "" {
		return fmt.Errorf("cluster-scoped, but the manifest names namespace %s", u.GetNamespace())
	}
	_, err = r.Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	if apierrors.IsAlreadyExists(err) {
		body, merr := u.MarshalJSON()
		if merr != nil {
			return merr
		}
		_, err = r.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
			DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict", FieldManager: "petrel-test", Force: ptr(true),
		})
	}
	if err != nil {
		return fmt.Errorf("rejected: %w", err)
	}
	return nil
}

func ptr[T any](v T) *T { return &v }
