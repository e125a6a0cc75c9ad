package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/petrel-net/petrel/datastore"
	etcdcfg "github.com/petrel-net/petrel/datastore/etcd"
	"github.com/petrel-net/petrel/e2e/harness"
	"github.com/petrel-net/petrel/internal/testenv/etcdserver"
	"github.com/petrel-net/petrel/internal/testenv/pki"
)

// TestEtcdMutualTLS: against a real etcd with --client-cert-auth, the
// petrel binary's resource and IPAM commands (environment and flags), the
// daemon and the CNI plugin all work with the right files; a wrong CA, a
// missing key and an expired certificate each fail with a message naming
// the problem. Then with etcd auth on (the CLI and the CNI plugin as the
// user their certificate's CN names, the daemon with a password): the
// right password works, a wrong one fails clearly, and the password is in
// no output, log or error.
func TestEtcdMutualTLS(t *testing.T) {
	harness.RequireRoot(t)
	dir := t.TempDir()
	ca := pki.NewCA(t, dir, "etcd")
	other := pki.NewCA(t, dir, "other")
	client := ca.Issue(t, "petrel", pki.Options{})
	etcd := etcdserver.StartTLS(t, &etcdserver.TLS{Server: ca.Issue(t, "etcd-server", pki.Options{Server: true}), ClientCA: ca.CertFile, Client: client})
	creds := etcdcfg.Config{CACertFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile}
	env := func(c etcdcfg.Config) []string {
		return []string{"DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + etcd.Endpoint,
			"ETCD_CA_CERT_FILE=" + c.CACertFile, "ETCD_CERT_FILE=" + c.CertFile, "ETCD_KEY_FILE=" + c.KeyFile}
	}
	petrel := func(env []string, args ...string) (string, error) {
		cmd := exec.Command(petrelBin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	poolFile := filepath.Join(dir, "pool.yaml")
	if err := os.WriteFile(poolFile, []byte(strings.ReplaceAll(strings.ReplaceAll(seedPool, "default-ipv4-ippool", "tls-pool"), "192.168.0.0/16", "10.250.0.0/16")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"apply", "-f", poolFile},
		{"ipam", "allocate", "--handle", "tls-test", "--node", "tls-node"},
		{"ipam", "show"},
	} {
		if out, err := petrel(env(creds), args...); err != nil {
			t.Fatalf("petrel %v over mutual TLS: %v\n%s", args, err, out)
		}
	}
	// The same by flags alone.
	out, err := petrel(nil, "get", "ippools", "-o", "yaml", "--datastore-type", "etcdv3", "--etcd-endpoints", etcd.Endpoint,
		"--etcd-ca-cert-file", ca.CertFile, "--etcd-cert-file", client.CertFile, "--etcd-key-file", client.KeyFile)
	if err != nil || !strings.Contains(out, "10.250.0.0/16") {
		t.Fatalf("petrel get ippools with flags: %v\n%s", err, out)
	}

	expired := ca.Issue(t, "expired", pki.Options{NotAfter: time.Now().Add(-time.Hour)})
	missing := filepath.Join(dir, "nope-key.pem")
	for name, tc := range map[string]struct {
		creds etcdcfg.Config
		want  []string
	}{
		"wrong CA":     {etcdcfg.Config{CACertFile: other.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile}, []string{"unknown CA", other.CertFile}},
		"missing key":  {etcdcfg.Config{CACertFile: ca.CertFile, CertFile: client.CertFile, KeyFile: missing}, []string{"ETCD_KEY_FILE", missing}},
		"expired cert": {etcdcfg.Config{CACertFile: ca.CertFile, CertFile: expired.CertFile, KeyFile: expired.KeyFile}, []string{"expired", expired.CertFile}},
	} {
		start := time.Now()
		out, err := petrel(env(tc.creds), "get", "ippools")
		if err == nil {
			t.Errorf("%s: petrel get worked:\n%s", name, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not say %q:\n%s", name, w, out)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %s to fail", name, d)
		}
	}

	const user, password = "petrel-node", "etcd-Pa55-9f3c1"
	etcd.EnableAuth(t, map[string]string{"petrel": "", user: password})
	var outputs []string // everything petrel printed or logged
	out, err = petrel(append(env(creds), "ETCD_USERNAME="+user, "ETCD_PASSWORD=wrong-"+password), "get", "ippools")
	outputs = append(outputs, out)
	if err == nil || !strings.Contains(out, "authentication failed") || !strings.Contains(out, user) {
		t.Errorf("a wrong etcd password: %v\n%s", err, out)
	}

	// The daemon, in a node namespace, through a relay to etcd on the
	// host's loopback (127.0.0.1 is in etcd's certificate).
	c := newCNILabOn(t, etcd, creds)
	u, _ := url.Parse(etcd.Endpoint)
	relay := relayInto(t, "/var/run/netns/"+c.node.NS, u.Host)
	lab := harness.New(t)
	c.node.MustRun(t, "ip", "addr", "add", "10.0.0.1/32", "dev", "lo") // the node address the daemon is given
	daemonEnv := append(env(creds), "NODENAME=tls-daemon", "IP=10.0.0.1", "ETCD_ENDPOINTS=https://"+relay,
		"ETCD_USERNAME="+user, "ETCD_PASSWORD="+password)
	daemon := startPetrelFromDatastore(t, lab, c.node, daemonEnv...)
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		_, err := c.b.Get(t.Context(), datastore.KindNode, "tls-daemon")
		return err
	}, "the daemon registers its Node over mutual TLS")

	// The CNI plugin, with the files install-cni copied to petrel-tls.
	for _, k := range []string{"etcd_ca_cert_file", "etcd_cert_file", "etcd_key_file"} {
		if p, _ := c.plugin0[k].(string); !strings.Contains(p, "/petrel-tls/") {
			t.Errorf("installed conflist: %s = %q, want a file under petrel-tls", k, c.plugin0[k])
		}
	}
	_, podPath := c.podNS("tls")
	res, err := c.plugin("ADD", "7150", podPath, "eth0", c.conf(nil))
	if err != nil {
		t.Fatal(err)
	}
	var r types100.Result
	if err := json.Unmarshal(res, &r); err != nil || len(r.IPs) != 1 {
		t.Fatalf("ADD: %v\n%s", err, res)
	}
	if got := c.handleAddrs("7150"); len(got) != 1 {
		t.Errorf("handle holds %v", got)
	}
	_, podPath2 := c.podNS("tls2")
	bad := c.conf(map[string]any{"etcd_ca_cert_file": other.CertFile})
	if _, err := c.plugin("ADD", "7151", podPath2, "eth0", bad); err == nil || !strings.Contains(err.Error(), "unknown CA") {
		t.Errorf("ADD with the wrong CA: %v", fmt.Sprint(err))
	}

	for _, args := range [][]string{{"get", "nodes", "-o", "yaml"}, {"get", "ippools", "-o", "wide"}, {"ipam", "show", "--show-blocks"}} {
		out, err := petrel(append(env(creds), "ETCD_USERNAME="+user, "ETCD_PASSWORD="+password), args...)
		if err != nil {
			t.Errorf("petrel %v as %s: %v\n%s", args, user, err, out)
		}
		outputs = append(outputs, out)
	}
	out, _ = daemon.Run(petrelBin, "status", "-o", "json", "--socket", daemon.socket)
	log, _ := os.ReadFile(daemon.proc.LogPath)
	for i, o := range append(outputs, out, string(log)) {
		if strings.Contains(o, password) {
			t.Errorf("output %d shows the etcd password:\n%s", i, o)
		}
	}
}
