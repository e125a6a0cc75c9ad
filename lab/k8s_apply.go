package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// upstreamImage is the image deploy/k8s names; the lab swaps in its own.
const upstreamImage = "ghcr.io/petrel-net/petrel"

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// readManifests reads every object of the YAML files in dir.
func readManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s", dir)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		fobjs, err := readManifestFile(f)
		if err != nil {
			return nil, err
		}
		objs = append(objs, fobjs...)
	}
	return objs, nil
}

// readManifestFile reads every object of a YAML file.
func readManifestFile(f string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for i, d := range docSep.Split(string(data), -1) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(d), &u.Object); err != nil {
			return nil, fmt.Errorf("%s document %d: %w", f, i, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs, nil
}

// setImage replaces the upstream petrel image in every container of a
// workload's pod template; nothing else of the manifests changes.
func setImage(u *unstructured.Unstructured, image string) {
	for _, field := range []string{"initContainers", "containers"} {
		path := []string{"spec", "template", "spec", field}
		cs, _, _ := unstructured.NestedSlice(u.Object, path...)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				if img, _ := m["image"].(string); strings.HasPrefix(img, upstreamImage+":") {
					m["image"] = image
				}
			}
		}
		if cs != nil {
			_ = unstructured.SetNestedSlice(u.Object, cs, path...)
		}
	}
}

// applyManifests server-side applies the objects in order to the lab's
// Kubernetes API, rediscovering the API when a kind is not known yet (a
// CRD applied just before). The API server's warnings go to out.
func applyManifests(ctx context.Context, s *State, objs []*unstructured.Unstructured, out io.Writer) error {
	cfg, err := KubeRest(s)
	if err != nil {
		return err
	}
	cfg.WarningHandler = rest.NewWarningWriter(out, rest.WarningWriterOptions{})
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		var m *meta.RESTMapping
		err := poll(30*time.Second, 500*time.Millisecond, func() error {
			var err error
			if m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				mapper.Reset()
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ns := u.GetNamespace()
			if ns == "" {
				ns = "default"
			}
			ri = dyn.Resource(m.Resource).Namespace(ns)
		}
		if _, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "petrel-lab", Force: true}); err != nil {
			return fmt.Errorf("apply %s %s: %w", gvk.Kind, u.GetName(), err)
		}
	}
	return nil
}
