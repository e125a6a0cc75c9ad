// Package deploy holds the manifests; its test checks they say what the
// docs promise (a wrong probe command would only show on a cluster).
package deploy

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

func documents(t *testing.T, path string) map[string][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string][]byte{}
	for _, d := range regexp.MustCompile(`(?m)^---$`).Split(string(data), -1) {
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(d), &head); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs[head.Kind] = []byte(d)
	}
	return docs
}

func TestDaemonSetLooksLikeCalicoNode(t *testing.T) {
	docs := documents(t, "k8s/petrel-node.yaml")
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(docs["DaemonSet"], &ds); err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
		t.Fatalf("want host network, one install-cni init container and one agent: %+v", spec)
	}
	if got := strings.Join(spec.InitContainers[0].Command, " "); !strings.HasPrefix(got, "petrel install-cni") {
		t.Errorf("init container runs %q", got)
	}
	c := spec.Containers[0]
	if got := strings.Join(c.ReadinessProbe.Exec.Command, " "); got != "petrel health --bgp-ready --kernel-ready" {
		t.Errorf("readiness probe %q", got)
	}
	if got := strings.Join(c.LivenessProbe.Exec.Command, " "); got != "petrel health --live" {
		t.Errorf("liveness probe %q", got)
	}
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Error("agent must be privileged (it programs routes and links)")
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["NODENAME"] != "spec.nodeName" || env["DATASTORE_TYPE"] != "kubernetes" {
		t.Errorf("env = %v", env)
	}

	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(docs["ClusterRole"], &role); err != nil {
		t.Fatal(err)
	}
	var crds []string
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, "crd.projectcalico.org") {
			crds = r.Resources
		}
	}
	entries, _ := os.ReadDir("crds")
	for _, e := range entries {
		plural := strings.TrimSuffix(strings.TrimPrefix(e.Name(), "crd.projectcalico.org_"), ".yaml")
		if !slices.Contains(crds, plural) {
			t.Errorf("the ClusterRole does not grant %s, which has a CRD", plural)
		}
	}
}
