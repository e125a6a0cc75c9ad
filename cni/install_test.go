package cni

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTemplateMatchesDeploy(t *testing.T) {
	b, err := os.ReadFile("../deploy/cni/10-petrel.conflist")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != ConflistTemplate {
		t.Error("cni/10-petrel.conflist and deploy/cni/10-petrel.conflist differ: keep them equal")
	}
}

func TestInstall(t *testing.T) {
	dir := t.TempDir()
	binDir, netDir := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d")
	src := filepath.Join(dir, "petrel")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho petrel\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A fake service account.
	sa := filepath.Join(dir, "sa")
	os.MkdirAll(sa, 0o755)
	os.WriteFile(filepath.Join(sa, "token"), []byte("tok.en-123\n"), 0o600)
	os.WriteFile(filepath.Join(sa, "ca.crt"), []byte("-----BEGIN CERTIFICATE-----\nxx\n-----END CERTIFICATE-----\n"), 0o600)
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")

	var out strings.Builder
	err := Install(InstallOptions{BinDir: binDir, NetDir: netDir, Binary: src, NodeName: `node-"1"`, MTU: 1410,
		ServiceAccountDir: sa, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{PluginName, IPAMName} {
		fi, err := os.Stat(filepath.Join(binDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o111 != 0o111 {
			t.Errorf("%s mode %v, want executable", name, fi.Mode())
		}
		if b, _ := os.ReadFile(filepath.Join(binDir, name)); !strings.Contains(string(b), "echo petrel") {
			t.Errorf("%s is not a copy of the binary", name)
		}
	}
	kc := filepath.Join(netDir, DefaultKubeconfigName)
	fi, err := os.Stat(kc)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(kc)
	for _, want := range []string{"server: https://10.96.0.1:443", "token: tok.en-123", "certificate-authority-data: ", "current-context: petrel-context"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("kubeconfig lacks %q:\n%s", want, b)
		}
	}

	b, err = os.ReadFile(filepath.Join(netDir, DefaultConflistName))
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Name       string           `json:"name"`
		CNIVersion string           `json:"cniVersion"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, b)
	}
	if strings.Contains(string(b), "__") {
		t.Errorf("placeholders left:\n%s", b)
	}
	if list.Name != NetworkName || len(list.Plugins) != 2 || list.Plugins[0]["type"] != PluginName || list.Plugins[1]["type"] != "portmap" {
		t.Fatalf("conflist: %s", b)
	}
	p := list.Plugins[0]
	if p["nodename"] != `node-"1"` || p["mtu"] != 1410.0 || p["datastore_type"] != "kubernetes" ||
		p["kubernetes"].(map[string]any)["kubeconfig"] != kc || p["ipam"].(map[string]any)["type"] != IPAMName {
		t.Errorf("plugin entry: %v", p)
	}
	// What the plugin reads back.
	raw, _ := json.Marshal(p)
	c, err := LoadConf(raw, true)
	if err != nil || c.Nodename != `node-"1"` || c.MTU != 1410 {
		t.Errorf("LoadConf of the installed entry: %+v, %v", c, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*", ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// Again, outside a pod, etcd: no kubeconfig needed, files replaced.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	out.Reset()
	if err := Install(InstallOptions{BinDir: binDir, NetDir: t.TempDir(), Binary: src, NodeName: "n2", DatastoreType: "etcdv3",
		EtcdEndpoints: "http://10.0.0.1:2379", ServiceAccountDir: filepath.Join(dir, "none"), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no kubeconfig written") {
		t.Errorf("output: %s", out.String())
	}
}

func TestInstallKubeconfigFrom(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "petrel")
	os.WriteFile(src, []byte("bin"), 0o755)
	from := filepath.Join(dir, "kc")
	os.WriteFile(from, []byte("apiVersion: v1\nkind: Config\n"), 0o644)
	if err := Install(InstallOptions{BinDir: dir + "/b", NetDir: dir + "/n", Binary: src, NodeName: "n", KubeconfigFrom: from}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir + "/n/" + DefaultKubeconfigName)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("kubeconfig: %v %v", fi, err)
	}
	if err := Install(InstallOptions{BinDir: dir + "/b", NetDir: dir + "/n", Binary: src, NodeName: "n", DatastoreType: "etcdv3"}); err == nil || !strings.Contains(err.Error(), "etcd endpoints") {
		t.Errorf("etcdv3 without endpoints: %v", err)
	}
	if _, err := FillConflist(`{"name": "x", "plugins": [{"type": "a", "mtu": __CNI_MTU__}`, map[string]string{"__CNI_MTU__": "1"}); err == nil {
		t.Error("FillConflist accepted broken JSON")
	}
}
