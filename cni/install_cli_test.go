package cni

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// calicoStyleTemplate is what the cni-config ConfigMap holds: Calico's
// placeholders, petrel's plugin types.
const calicoStyleTemplate = `{
  "name": "k8s-pod-network",
  "cniVersion": "1.0.0",
  "plugins": [
    {
      "type": "petrel-cni",
      "datastore_type": "kubernetes",
      "nodename": "__KUBERNETES_NODE_NAME__",
      "mtu": __CNI_MTU__,
      "ipam": {"type": "petrel-ipam"},
      "policy": {"type": "k8s"},
      "kubernetes": {"kubeconfig": "__KUBECONFIG_FILEPATH__"}
    },
    {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}}
  ]
}`

// parseCLI binds install-cni's flags with env as the environment and
// parses args.
func parseCLI(t *testing.T, env map[string]string, args ...string) (*InstallCLI, error) {
	t.Helper()
	fs := pflag.NewFlagSet("install-cni", pflag.ContinueOnError)
	c := BindInstallFlags(fs, func(k string) string { return env[k] })
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c, c.Validate()
}

func fakeBinary(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "petrel")
	if err := os.WriteFile(src, []byte("#!/bin/sh\necho petrel\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return src
}

// readConflist reads a conflist and returns its petrel-cni entry.
func readConflist(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Name    string           `json:"name"`
		Plugins []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", path, err, b)
	}
	if list.Name != NetworkName || len(list.Plugins) == 0 || list.Plugins[0]["type"] != PluginName {
		t.Fatalf("%s: %s", path, b)
	}
	return list.Plugins[0]
}

// noTempFiles fails if a temporary file is left anywhere under dir.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func TestInstallCLIDefaults(t *testing.T) {
	c, err := parseCLI(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options
	if o.NetDir != DefaultNetDir || o.BinDir != DefaultBinDir || o.ConflistName != DefaultConflistName ||
		o.MTU != 0 || o.TemplateText != "" || o.Template != "" || o.DatastoreType != "kubernetes" || c.Sleep {
		t.Errorf("defaults: %+v sleep=%v", o, c.Sleep)
	}
	if h, _ := os.Hostname(); o.NodeName != h {
		t.Errorf("node name %q, want the hostname %q", o.NodeName, h)
	}
	// $NODENAME when $KUBERNETES_NODE_NAME is unset.
	if c, _ := parseCLI(t, map[string]string{"NODENAME": "n-old"}); c.Options.NodeName != "n-old" {
		t.Errorf("$NODENAME: %q", c.Options.NodeName)
	}
}

func TestInstallCLIEnvironment(t *testing.T) {
	dir := t.TempDir()
	netDir := filepath.Join(dir, "net.d")
	env := map[string]string{
		"CNI_NETWORK_CONFIG":   calicoStyleTemplate,
		"CNI_CONF_NAME":        "05-petrel.conflist",
		"CNI_NET_DIR":          netDir,
		"CNI_MTU":              "1440",
		"KUBERNETES_NODE_NAME": "node-a",
		"NODENAME":             "not-this-one",
		"SLEEP":                "true",
	}
	c, err := parseCLI(t, env, "--cni-bin-dir", filepath.Join(dir, "bin"), "--binary", fakeBinary(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Sleep {
		t.Error("SLEEP=true: want sleep")
	}
	o := c.Options
	if o.NetDir != netDir || o.ConflistName != "05-petrel.conflist" || o.MTU != 1440 || o.NodeName != "node-a" || o.TemplateText != calicoStyleTemplate {
		t.Fatalf("options from the environment: %+v", o)
	}
	o.KubeconfigFrom = fakeBinary(t, t.TempDir()) // any file
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	p := readConflist(t, filepath.Join(netDir, "05-petrel.conflist"))
	if p["nodename"] != "node-a" || p["mtu"] != 1440.0 ||
		p["kubernetes"].(map[string]any)["kubeconfig"] != filepath.Join(netDir, DefaultKubeconfigName) {
		t.Errorf("filled entry: %v", p)
	}
	if _, err := os.Stat(filepath.Join(netDir, DefaultConflistName)); !os.IsNotExist(err) {
		t.Errorf("the default conflist name was written too: %v", err)
	}
	noTempFiles(t, dir)

	for _, v := range []string{"false", "0", ""} {
		env["SLEEP"] = v
		if c, err := parseCLI(t, env); err != nil || c.Sleep {
			t.Errorf("SLEEP=%q: sleep=%v err=%v", v, c.Sleep, err)
		}
	}
}

func TestInstallCLIFlagsWin(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "tmpl.conflist")
	os.WriteFile(tmpl, []byte(strings.Replace(calicoStyleTemplate, `"datastore_type": "kubernetes",`, `"datastore_type": "kubernetes", "log_level": "from-file",`, 1)), 0o644)
	env := map[string]string{
		"CNI_NETWORK_CONFIG":   `{"broken"`,
		"CNI_CONF_NAME":        "env.conflist",
		"CNI_NET_DIR":          "/nonexistent/env",
		"CNI_MTU":              "1440",
		"KUBERNETES_NODE_NAME": "env-node",
		"SLEEP":                "true",
	}
	netDir := filepath.Join(dir, "net.d")
	c, err := parseCLI(t, env, "--cni-net-dir", netDir, "--cni-bin-dir", filepath.Join(dir, "bin"), "--binary", fakeBinary(t, dir),
		"--conflist-name", "flag.conflist", "--mtu", "1300", "--nodename", "flag-node", "--sleep=false", "--template", tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sleep {
		t.Error("--sleep=false must win over SLEEP=true")
	}
	if err := Install(c.Options); err != nil {
		t.Fatal(err)
	}
	p := readConflist(t, filepath.Join(netDir, "flag.conflist"))
	if p["nodename"] != "flag-node" || p["mtu"] != 1300.0 || p["log_level"] != "from-file" {
		t.Errorf("filled entry: %v", p)
	}
	// A bad $CNI_MTU does not matter when --mtu is given.
	env["CNI_MTU"] = "lots"
	if _, err := parseCLI(t, env, "--mtu", "1400"); err != nil {
		t.Errorf("--mtu with a bad $CNI_MTU: %v", err)
	}
}

func TestInstallCLIBadEnvironment(t *testing.T) {
	for _, env := range []map[string]string{
		{"CNI_MTU": "lots"},
		{"CNI_MTU": "20"},
		{"SLEEP": "maybe"},
	} {
		if _, err := parseCLI(t, env); err == nil {
			t.Errorf("%v accepted", env)
		}
	}
}

func TestInstallRejectsBadTemplates(t *testing.T) {
	for name, tmpl := range map[string]string{
		"not JSON":            `{"name": "k8s-pod-network", "plugins": [`,
		"bare placeholder":    strings.Replace(calicoStyleTemplate, `"__KUBERNETES_NODE_NAME__"`, `__KUBERNETES_NODE_NAME__`, 1),
		"unknown placeholder": strings.Replace(calicoStyleTemplate, `"policy"`, `"log_file_path": "__LOG_FILE_PATH__", "policy"`, 1),
		"no plugins":          `{"name": "k8s-pod-network", "cniVersion": "1.0.0", "plugins": []}`,
		"no name":             `{"cniVersion": "1.0.0", "plugins": [{"type": "portmap"}]}`,
		"plugin without type": `{"name": "n", "cniVersion": "1.0.0", "plugins": [{"mtu": 1}]}`,
		"bad petrel-cni":      strings.Replace(calicoStyleTemplate, `__CNI_MTU__`, `20`, 1),
		"petrel-cni no ipam":  strings.Replace(calicoStyleTemplate, `"ipam": {"type": "petrel-ipam"},`, ``, 1),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			netDir := filepath.Join(dir, "net.d")
			err := Install(InstallOptions{BinDir: filepath.Join(dir, "bin"), NetDir: netDir, Binary: fakeBinary(t, dir),
				NodeName: "n", TemplateText: tmpl, ServiceAccountDir: filepath.Join(dir, "none")})
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
			if _, err := os.Stat(filepath.Join(netDir, DefaultConflistName)); !os.IsNotExist(err) {
				t.Errorf("a conflist was written: %v", err)
			}
			noTempFiles(t, dir)
		})
	}
	if err := Install(InstallOptions{BinDir: t.TempDir(), NetDir: t.TempDir(), Binary: fakeBinary(t, t.TempDir()), NodeName: "n",
		ConflistName: "../escape.conflist"}); err == nil {
		t.Error("a conflist name with a slash was accepted")
	}
}

// TestInstallTwice: re-running install-cni (a restarted init container)
// leaves the same files and nothing else.
func TestInstallTwice(t *testing.T) {
	dir := t.TempDir()
	sa := filepath.Join(dir, "sa")
	os.MkdirAll(sa, 0o755)
	os.WriteFile(filepath.Join(sa, "token"), []byte("tok\n"), 0o600)
	os.WriteFile(filepath.Join(sa, "ca.crt"), []byte("ca"), 0o600)
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	root := filepath.Join(dir, "host")
	for _, tmpl := range []string{"", calicoStyleTemplate} { // built-in (__NODENAME__) and Calico's placeholders
		o := InstallOptions{BinDir: filepath.Join(root, "bin"), NetDir: filepath.Join(root, "net.d"), Binary: fakeBinary(t, dir),
			NodeName: "node-b", MTU: 1400, TemplateText: tmpl, ServiceAccountDir: sa}
		snapshot := func() map[string]string {
			m := map[string]string{}
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, _ := os.ReadFile(p)
				fi, _ := d.Info()
				m[p] = fi.Mode().String() + " " + string(b)
				return nil
			})
			return m
		}
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		first := snapshot()
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		second := snapshot()
		if len(first) != 4 || len(second) != len(first) {
			t.Errorf("files: %v then %v", slices.Sorted(maps.Keys(first)), slices.Sorted(maps.Keys(second)))
		}
		for p, v := range first {
			if second[p] != v {
				t.Errorf("%s changed on the second run", p)
			}
		}
		p := readConflist(t, filepath.Join(o.NetDir, DefaultConflistName))
		if p["nodename"] != "node-b" || p["mtu"] != 1400.0 {
			t.Errorf("template %.20q: entry %v", tmpl, p)
		}
		noTempFiles(t, dir)
	}
}
