package cni

import (
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"sigs.k8s.io/yaml"
)

// ConflistTemplate is deploy/cni/10-petrel.conflist (a copy kept equal by
// a test): Calico's placeholders __DATASTORE_TYPE__, __ETCD_ENDPOINTS__,
// __ETCD_CA_CERT_FILE__, __ETCD_CERT_FILE__, __ETCD_KEY_FILE__,
// __NODENAME__, __CNI_MTU__ and __KUBECONFIG_FILEPATH__.
//
//go:embed 10-petrel.conflist
var ConflistTemplate string

// Install defaults.
const (
	DefaultBinDir            = "/opt/cni/bin"
	DefaultNetDir            = "/etc/cni/net.d"
	DefaultConflistName      = "10-petrel.conflist"
	DefaultKubeconfigName    = "petrel-kubeconfig"
	DefaultServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// TLSDirName is where the etcd TLS files go in the CNI config
	// directory (Calico's calico-tls).
	TLSDirName = "petrel-tls"
)

// InstallOptions say what install-cni installs where.
type InstallOptions struct {
	BinDir, NetDir string // CNI binary and config directories
	Binary         string // the petrel binary to copy ("" = the running one)
	Template       string // conflist template file (wins over TemplateText)
	// TemplateText is the conflist template itself (Calico's
	// $CNI_NETWORK_CONFIG); "" with Template "" = ConflistTemplate.
	TemplateText   string
	ConflistName   string // "" = DefaultConflistName
	KubeconfigName string // file in NetDir; "" = DefaultKubeconfigName

	NodeName      string
	DatastoreType string // kubernetes (default) or etcdv3
	EtcdEndpoints string
	// etcd TLS files as mounted in the install container (Calico:
	// /calico-secrets/etcd-ca, etcd-cert, etcd-key); copied to
	// NetDir/TLSDirName on the host for the plugins.
	EtcdCACertFile, EtcdCertFile, EtcdKeyFile string
	MTU                                       int // 0 = workload.DefaultMTU

	// KubeconfigFrom, if set, is copied as the kubeconfig instead of
	// building one from the service account.
	KubeconfigFrom string
	// ServiceAccountDir holds token and ca.crt ("" = DefaultServiceAccountDir);
	// the API server is $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	ServiceAccountDir string

	Out io.Writer // progress messages (nil = discard)
}

// Install does what the seed's install-cni init container does: copies
// the petrel binary to BinDir as petrel-cni and petrel-ipam, writes a
// kubeconfig (0600) for them, and fills and writes the conflist. Every
// file is written to a temporary name and renamed into place.
func Install(o InstallOptions) error {
	o = o.withDefaults()
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	if err := o.validate(); err != nil {
		return err
	}
	if err := o.installBinaries(out); err != nil {
		return err
	}
	kubeconfigPath, err := o.installKubeconfig(out)
	if err != nil {
		return err
	}
	tlsFiles, err := o.installTLS(out)
	if err != nil {
		return fmt.Errorf("install-cni: %w", err)
	}
	return o.installConflist(out, kubeconfigPath, tlsFiles)
}

// withDefaults fills in Calico's defaults for what o leaves empty.
func (o InstallOptions) withDefaults() InstallOptions {
	if o.BinDir == "" {
		o.BinDir = DefaultBinDir
	}
	if o.NetDir == "" {
		o.NetDir = DefaultNetDir
	}
	if o.ConflistName == "" {
		o.ConflistName = DefaultConflistName
	}
	if o.KubeconfigName == "" {
		o.KubeconfigName = DefaultKubeconfigName
	}
	if o.ServiceAccountDir == "" {
		o.ServiceAccountDir = DefaultServiceAccountDir
	}
	if o.DatastoreType == "" {
		o.DatastoreType = "kubernetes"
	}
	if o.MTU == 0 {
		o.MTU = 1450
	}
	return o
}

// validate refuses, before anything is written, options the plugins could
// not run with.
func (o InstallOptions) validate() error {
	if o.NodeName == "" {
		return errors.New("install-cni: no node name (set --nodename or $KUBERNETES_NODE_NAME)")
	}
	if o.DatastoreType != "kubernetes" && o.DatastoreType != "etcdv3" {
		return fmt.Errorf("install-cni: datastore type %q: want kubernetes or etcdv3", o.DatastoreType)
	}
	if o.DatastoreType == "etcdv3" && o.EtcdEndpoints == "" {
		return errors.New("install-cni: datastore type etcdv3 needs etcd endpoints")
	}
	return nil
}

// installBinaries copies this binary (or o.Binary) into BinDir under the
// plugin names it answers to.
func (o InstallOptions) installBinaries(out io.Writer) error {
	src := o.Binary
	if src == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("install-cni: find the running binary: %w", err)
		}
		src = exe
	}
	bin, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("install-cni: read binary: %w", err)
	}
	if err := os.MkdirAll(o.BinDir, 0o755); err != nil {
		return fmt.Errorf("install-cni: %w", err)
	}
	for _, name := range []string{PluginName, IPAMName} {
		dst := filepath.Join(o.BinDir, name)
		if err := writeFileAtomic(dst, bin, 0o755); err != nil {
			return fmt.Errorf("install-cni: %w", err)
		}
		fmt.Fprintf(out, "installed %s\n", dst)
	}
	return nil
}

// installKubeconfig writes the plugins' kubeconfig into NetDir when
// running in a pod, and returns its path (named in the conflist either way).
func (o InstallOptions) installKubeconfig(out io.Writer) (string, error) {
	if err := os.MkdirAll(o.NetDir, 0o755); err != nil {
		return "", fmt.Errorf("install-cni: %w", err)
	}
	path := filepath.Join(o.NetDir, o.KubeconfigName)
	kc, err := o.kubeconfig()
	switch {
	case err != nil:
		return "", fmt.Errorf("install-cni: kubeconfig: %w", err)
	case kc == nil:
		fmt.Fprintf(out, "not running in a pod (no service account token or KUBERNETES_SERVICE_HOST): no kubeconfig written\n")
	default:
		if err := writeFileAtomic(path, kc, 0o600); err != nil {
			return "", fmt.Errorf("install-cni: %w", err)
		}
		fmt.Fprintf(out, "wrote %s\n", path)
	}
	return path, nil
}

// installConflist fills the conflist template and writes it into NetDir.
func (o InstallOptions) installConflist(out io.Writer, kubeconfigPath string, tlsFiles [3]string) error {
	tmpl, err := o.conflistTemplate()
	if err != nil {
		return err
	}
	conf, err := FillConflist(tmpl, map[string]string{
		"__DATASTORE_TYPE__":          o.DatastoreType,
		"__ETCD_ENDPOINTS__":          o.EtcdEndpoints,
		"__ETCD_CA_CERT_FILE__":       tlsFiles[0],
		"__ETCD_CERT_FILE__":          tlsFiles[1],
		"__ETCD_KEY_FILE__":           tlsFiles[2],
		"__NODENAME__":                o.NodeName,
		"__KUBERNETES_NODE_NAME__":    o.NodeName,
		"__KUBECONFIG_FILEPATH__":     kubeconfigPath,
		"__CNI_MTU__":                 strconv.Itoa(o.MTU),
		"__KUBERNETES_SERVICE_HOST__": os.Getenv("KUBERNETES_SERVICE_HOST"),
		"__KUBERNETES_SERVICE_PORT__": os.Getenv("KUBERNETES_SERVICE_PORT"),
	})
	if err != nil {
		return fmt.Errorf("install-cni: %w", err)
	}
	if strings.ContainsAny(o.ConflistName, `/\`) || o.ConflistName == "." || o.ConflistName == ".." {
		return fmt.Errorf("install-cni: conflist name %q: want a file name", o.ConflistName)
	}
	dst := filepath.Join(o.NetDir, o.ConflistName)
	if err := writeFileAtomic(dst, conf, 0o644); err != nil {
		return fmt.Errorf("install-cni: %w", err)
	}
	fmt.Fprintf(out, "wrote %s\n", dst)
	return nil
}

// conflistTemplate is the template file, else the template text, else
// Calico's.
func (o InstallOptions) conflistTemplate() (string, error) {
	switch {
	case o.Template != "":
		b, err := os.ReadFile(o.Template)
		if err != nil {
			return "", fmt.Errorf("install-cni: template: %w", err)
		}
		return string(b), nil
	case strings.TrimSpace(o.TemplateText) != "":
		return o.TemplateText, nil
	}
	return ConflistTemplate, nil
}

// installTLS copies the etcd CA, certificate and key to NetDir/TLSDirName
// (0600, as the key must be) and returns their host paths, "" for the
// files not given.
func (o InstallOptions) installTLS(out io.Writer) ([3]string, error) {
	var dst [3]string
	src := [3]string{o.EtcdCACertFile, o.EtcdCertFile, o.EtcdKeyFile}
	names := [3]string{"etcd-ca", "etcd-cert", "etcd-key"}
	dir := filepath.Join(o.NetDir, TLSDirName)
	for i, s := range src {
		if s == "" {
			continue
		}
		data, err := os.ReadFile(s)
		if err != nil {
			return dst, fmt.Errorf("etcd TLS file: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return dst, err
		}
		dst[i] = filepath.Join(dir, names[i])
		if err := writeFileAtomic(dst[i], data, 0o600); err != nil {
			return dst, err
		}
		fmt.Fprintf(out, "wrote %s\n", dst[i])
	}
	return dst, nil
}

// placeholderRE matches a Calico-style placeholder left in a filled template.
var placeholderRE = regexp.MustCompile(`__[A-Z][A-Z0-9_]*__`)

// FillConflist replaces the placeholders (JSON-escaped inside strings; a
// bare placeholder such as __CNI_MTU__ gets the raw value) and checks that
// the outcome is a conflist with at least one plugin, that no placeholder
// is left unfilled and that every petrel-cni entry is a config the plugin
// accepts.
func FillConflist(tmpl string, values map[string]string) ([]byte, error) {
	s := tmpl
	for k, v := range values {
		esc, _ := json.Marshal(v)
		s = strings.ReplaceAll(s, `"`+k+`"`, string(esc))
		s = strings.ReplaceAll(s, k, strings.Trim(string(esc), `"`))
	}
	if left := placeholderRE.FindAllString(s, -1); len(left) > 0 {
		return nil, fmt.Errorf("conflist template: unknown placeholders %s", strings.Join(slices.Compact(slices.Sorted(slices.Values(left))), ", "))
	}
	var list types.NetConfList
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, fmt.Errorf("conflist template: not valid JSON once filled: %w", err)
	}
	if list.Name == "" || len(list.Plugins) == 0 {
		return nil, errors.New("conflist template: needs a name and plugins")
	}
	var raw struct {
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("conflist template: %w", err)
	}
	for i, p := range list.Plugins {
		if p.Type == "" {
			return nil, fmt.Errorf("conflist template: plugin %d has no type", i)
		}
		if p.Type == PluginName {
			if _, err := LoadConf(raw.Plugins[i], true); err != nil {
				return nil, fmt.Errorf("conflist template: plugin %d (%s): %w", i, p.Type, err)
			}
		}
	}
	return []byte(s), nil
}

// kubeconfig is the kubeconfig for the plugins: a copy of KubeconfigFrom,
// or built from the service account; nil when not in a pod.
func (o InstallOptions) kubeconfig() ([]byte, error) {
	if o.KubeconfigFrom != "" {
		return os.ReadFile(o.KubeconfigFrom)
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	token, err := os.ReadFile(filepath.Join(o.ServiceAccountDir, "token"))
	if errors.Is(err, os.ErrNotExist) || host == "" {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ca, err := os.ReadFile(filepath.Join(o.ServiceAccountDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	if port == "" {
		port = "443"
	}
	cfg := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []any{map[string]any{"name": "local", "cluster": map[string]any{
			"server":                     "https://" + net.JoinHostPort(host, port),
			"certificate-authority-data": base64.StdEncoding.EncodeToString(ca),
		}}},
		"users": []any{map[string]any{"name": "petrel", "user": map[string]any{
			"token": strings.TrimSpace(string(token)),
		}}},
		"contexts": []any{map[string]any{"name": "petrel-context", "context": map[string]any{
			"cluster": "local", "user": "petrel",
		}}},
		"current-context": "petrel-context",
	}
	return yaml.Marshal(cfg)
}

// writeFileAtomic writes data to a temporary file next to path and renames
// it into place, so readers (the container runtime, a running plugin)
// never see a partial file, and a busy binary is replaced, not rewritten.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return nil
}
