// Package deploy holds the manifests; its test checks they say what the
// docs promise (a wrong probe command would only show on a cluster).
package deploy

import (
	"encoding/json"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/petrel-net/petrel/cni"
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
	checkCapabilities(t, "k8s/petrel-node.yaml")
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["NODENAME"] != "spec.nodeName" || env["DATASTORE_TYPE"] != "kubernetes" || env["POD_NAMESPACE"] != "metadata.namespace" {
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

// TestClusterRoleIsLeastPrivilege: the ClusterRole grants exactly what the
// kubernetes datastore (datastore/kubernetes) uses — nodes and Calico's
// seven CRDs and Calico Enterprise's BFDConfiguration — and what Service
// advertisement uses (services/), and nothing more.
func TestClusterRoleIsLeastPrivilege(t *testing.T) {
	docs := documents(t, "k8s/petrel-node.yaml")
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(docs["ClusterRole"], &role); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("crds")
	if err != nil {
		t.Fatal(err)
	}
	var plurals []string
	for _, e := range entries {
		plurals = append(plurals, strings.TrimSuffix(strings.TrimPrefix(e.Name(), "crd.projectcalico.org_"), ".yaml"))
	}
	if len(plurals) != 9 {
		t.Errorf("deploy/crds holds %d CRDs, want Calico's eight (BGPFilter included) and BFDConfiguration: %v", len(plurals), plurals)
	}
	// group/resource -> verbs
	want := map[string][]string{"/nodes": {"get", "list", "watch", "update", "patch"},
		"/services": {"get", "list", "watch"}, "/services/status": {"update"},
		"discovery.k8s.io/endpointslices": {"get", "list", "watch"}, "coordination.k8s.io/leases": {"get", "create", "update"}}
	for _, p := range plurals {
		want["crd.projectcalico.org/"+p] = []string{"get", "list", "watch", "create", "update", "delete"}
	}
	got := map[string][]string{}
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			t.Errorf("unexpected rule %+v", r)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				k := g + "/" + res
				if _, dup := got[k]; dup {
					t.Errorf("%s granted twice", k)
				}
				got[k] = slices.Sorted(slices.Values(r.Verbs))
			}
		}
	}
	for k, v := range want {
		slices.Sort(v)
		if !slices.Equal(got[k], v) {
			t.Errorf("%s: verbs %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s granted, but petrel does not use it", k)
		}
		if slices.Contains(got[k], "*") {
			t.Errorf("%s: wildcard verb", k)
		}
	}
	var binding rbacv1.ClusterRoleBinding
	if err := yaml.UnmarshalStrict(docs["ClusterRoleBinding"], &binding); err != nil {
		t.Fatal(err)
	}
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 ||
		binding.Subjects[0].Kind != "ServiceAccount" || binding.Subjects[0].Name != "petrel-node" || binding.Subjects[0].Namespace != "kube-system" {
		t.Errorf("binding: %+v", binding)
	}
}

// TestInstallCNIFromConfigMap: the init container gets its conflist
// template from the cni-config ConfigMap as CNI_NETWORK_CONFIG, the
// template fills into a conflist the plugin accepts, and the kubeconfig
// path install-cni puts in it is valid on the host.
func TestInstallCNIFromConfigMap(t *testing.T) {
	docs := documents(t, "k8s/petrel-node.yaml")
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(docs["ConfigMap"], &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Name != "cni-config" || cm.Namespace != "kube-system" {
		t.Errorf("ConfigMap %s/%s, want kube-system/cni-config", cm.Namespace, cm.Name)
	}
	tmpl := cm.Data["cni_network_config"]
	for _, ph := range []string{"__KUBERNETES_NODE_NAME__", "__CNI_MTU__", "__KUBECONFIG_FILEPATH__"} {
		if !strings.Contains(tmpl, ph) {
			t.Errorf("cni_network_config lacks %s", ph)
		}
	}

	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(docs["DaemonSet"], &ds); err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	if len(spec.InitContainers) != 1 {
		t.Fatalf("%d init containers", len(spec.InitContainers))
	}
	ic := spec.InitContainers[0]
	env := map[string]corev1.EnvVar{}
	for _, e := range ic.Env {
		env[e.Name] = e
	}
	ref := func(name, key string) {
		t.Helper()
		e := env[name]
		if e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil ||
			e.ValueFrom.ConfigMapKeyRef.Name != cm.Name || e.ValueFrom.ConfigMapKeyRef.Key != key {
			t.Errorf("%s: want configMapKeyRef %s/%s, got %+v", name, cm.Name, key, e)
			return
		}
		if _, ok := cm.Data[key]; !ok {
			t.Errorf("%s refers to %s, which the ConfigMap lacks", name, key)
		}
	}
	ref("CNI_NETWORK_CONFIG", "cni_network_config")
	ref("CNI_MTU", "veth_mtu")
	if e := env["KUBERNETES_NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("KUBERNETES_NODE_NAME: %+v", e)
	}
	if v := env["SLEEP"].Value; v == "true" {
		t.Error("an init container must not sleep")
	}
	if got := strings.Join(ic.Command, " "); got != "petrel install-cni" {
		t.Errorf("init container runs %q: the environment says it all", got)
	}

	// Where the init container writes is where the host looks, at the
	// same path (the conflist names the kubeconfig by that path).
	netDir := cni.DefaultNetDir
	if v := env["CNI_NET_DIR"].Value; v != "" {
		netDir = v
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]string{}
	for _, m := range ic.VolumeMounts {
		mounted[m.MountPath] = hostPaths[m.Name]
	}
	for _, dir := range []string{netDir, cni.DefaultBinDir} {
		if mounted[dir] != dir {
			t.Errorf("the init container writes to %s, which is host path %q", dir, mounted[dir])
		}
	}

	// Fill as install-cni does and read back as the plugin does.
	conf, err := cni.FillConflist(tmpl, map[string]string{
		"__KUBERNETES_NODE_NAME__": "node-1",
		"__CNI_MTU__":              cm.Data["veth_mtu"],
		"__KUBECONFIG_FILEPATH__":  path.Join(netDir, cni.DefaultKubeconfigName),
	})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Name    string            `json:"name"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(conf, &list); err != nil || list.Name != cni.NetworkName || len(list.Plugins) == 0 {
		t.Fatalf("filled template: %v\n%s", err, conf)
	}
	c, err := cni.LoadConf(list.Plugins[0], true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != cni.PluginName || c.IPAM.Type != cni.IPAMName || c.Nodename != "node-1" || c.DatastoreType != "kubernetes" ||
		c.Kubernetes.Kubeconfig != "/etc/cni/net.d/petrel-kubeconfig" {
		t.Errorf("plugin config: %+v", c)
	}
}

// TestEtcdManifestCarriesTLS: the etcd variant mounts Calico's
// calico-etcd-secrets at /calico-secrets in both containers, gives both
// the ETCD_* paths into it, and its conflist template fills (with the
// paths install-cni copies the files to) into a plugin config that
// points at them.
func TestEtcdManifestCarriesTLS(t *testing.T) {
	checkCapabilities(t, "k8s/petrel-node-etcd.yaml")
	docs := documents(t, "k8s/petrel-node-etcd.yaml")
	var cm corev1.ConfigMap
	var ds appsv1.DaemonSet
	var secret corev1.Secret
	for kind, v := range map[string]any{"ConfigMap": &cm, "DaemonSet": &ds, "Secret": &secret} {
		if err := yaml.UnmarshalStrict(docs[kind], v); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
	}
	if secret.Name != "calico-etcd-secrets" {
		t.Errorf("Secret %q, want Calico's calico-etcd-secrets", secret.Name)
	}
	spec := ds.Spec.Template.Spec
	secretVolume := ""
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secret.Name {
			secretVolume = v.Name
			if v.Secret.DefaultMode == nil || *v.Secret.DefaultMode != 0o400 {
				t.Errorf("secret volume mode %v, want 0400", v.Secret.DefaultMode)
			}
		}
	}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		mounted := false
		for _, m := range c.VolumeMounts {
			mounted = mounted || (m.Name == secretVolume && m.MountPath == "/calico-secrets" && m.ReadOnly)
		}
		if !mounted {
			t.Errorf("%s: %s not mounted read-only at /calico-secrets", c.Name, secret.Name)
		}
		env := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				env[e.Name] = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
		}
		for _, k := range []string{"ETCD_CA_CERT_FILE", "ETCD_CERT_FILE", "ETCD_KEY_FILE"} {
			if !strings.HasPrefix(env[k], "/calico-secrets/") {
				t.Errorf("%s: %s = %q, want a file in /calico-secrets", c.Name, k, env[k])
			}
		}
		if !strings.HasPrefix(env["ETCD_ENDPOINTS"], "https://") {
			t.Errorf("%s: ETCD_ENDPOINTS = %q", c.Name, env["ETCD_ENDPOINTS"])
		}
	}
	tls := path.Join(cni.DefaultNetDir, cni.TLSDirName)
	conf, err := cni.FillConflist(cm.Data["cni_network_config"], map[string]string{
		"__ETCD_ENDPOINTS__":       cm.Data["etcd_endpoints"],
		"__ETCD_CA_CERT_FILE__":    path.Join(tls, "etcd-ca"),
		"__ETCD_CERT_FILE__":       path.Join(tls, "etcd-cert"),
		"__ETCD_KEY_FILE__":        path.Join(tls, "etcd-key"),
		"__KUBERNETES_NODE_NAME__": "node-1",
		"__CNI_MTU__":              cm.Data["veth_mtu"],
	})
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Plugins []json.RawMessage }
	if err := json.Unmarshal(conf, &list); err != nil {
		t.Fatal(err)
	}
	c, err := cni.LoadConf(list.Plugins[0], true)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Datastore()
	if s.Type != "etcdv3" || s.Etcd.CACertFile != path.Join(tls, "etcd-ca") || s.Etcd.KeyFile != path.Join(tls, "etcd-key") || s.Etcd.CertFile != path.Join(tls, "etcd-cert") {
		t.Errorf("plugin datastore settings: %+v", s)
	}
}

// checkCapabilities: no container of the manifest's DaemonSet is
// privileged; the agent keeps exactly NET_ADMIN and NET_BIND_SERVICE (what
// e2e's TestDaemonNeedsOnlyItsCapabilities runs it with) and install-cni
// none.
func checkCapabilities(t *testing.T, file string) {
	t.Helper()
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(documents(t, file)["DaemonSet"], &ds); err != nil {
		t.Fatal(err)
	}
	spec := ds.Spec.Template.Spec
	want := map[string][]corev1.Capability{"petrel-node": {"NET_ADMIN", "NET_BIND_SERVICE"}, "install-cni": nil}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.Capabilities == nil {
			t.Errorf("%s: %s has no capabilities", file, c.Name)
			continue
		}
		if (sc.Privileged != nil && *sc.Privileged) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: %s may be privileged or escalate", file, c.Name)
		}
		if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || !slices.Equal(sc.Capabilities.Add, want[c.Name]) {
			t.Errorf("%s: %s drops %v and adds %v, want ALL and %v", file, c.Name, sc.Capabilities.Drop, sc.Capabilities.Add, want[c.Name])
		}
	}
}

// Secrets (BGP passwords) are readable only in the agent's own namespace:
// a Role, never the ClusterRole.
func TestSecretsOnlyInOwnNamespace(t *testing.T) {
	docs := documents(t, "k8s/petrel-node.yaml")
	var cluster rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(docs["ClusterRole"], &cluster); err != nil {
		t.Fatal(err)
	}
	for _, r := range cluster.Rules {
		if slices.Contains(r.Resources, "secrets") {
			t.Errorf("the ClusterRole grants secrets cluster-wide: %+v", r)
		}
	}
	var role rbacv1.Role
	if err := yaml.UnmarshalStrict(docs["Role"], &role); err != nil {
		t.Fatal(err)
	}
	if role.Namespace != "kube-system" || len(role.Rules) != 1 || !slices.Equal(role.Rules[0].Resources, []string{"secrets"}) ||
		!slices.Equal(role.Rules[0].Verbs, []string{"get", "list", "watch"}) {
		t.Errorf("Role = %+v, want get/list/watch on secrets in kube-system only", role)
	}
}
