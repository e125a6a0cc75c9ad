package etcd

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/internal/testenv/etcdserver"
	"github.com/petrel-net/petrel/internal/testenv/pki"
)

// TestTLS runs a real etcd with --client-cert-auth and certificates made
// here: the right files work; every wrong one fails up front with an
// error naming the file or the certificate problem. Then etcd auth: the
// right password works, a wrong one fails without being echoed.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := pki.NewCA(t, dir, "etcd")
	other := pki.NewCA(t, dir, "other")
	client := ca.Issue(t, "petrel", pki.Options{})
	srv := etcdserver.StartTLS(t, &etcdserver.TLS{Server: ca.Issue(t, "etcd-server", pki.Options{Server: true}), ClientCA: ca.CertFile, Client: client})
	good := Config{Endpoints: srv.Endpoint, CACertFile: ca.CertFile, CertFile: client.CertFile, KeyFile: client.KeyFile}

	b, err := New(t.Context(), good)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pool := &datastore.IPPool{Spec: datastore.IPPoolSpec{CIDR: "10.9.0.0/16", BlockSize: 26}}
	pool.Name = "tls-pool"
	if _, err := b.Create(t.Context(), pool); err != nil {
		t.Fatalf("create over mutual TLS: %v", err)
	}

	expired := ca.Issue(t, "expired", pki.Options{NotAfter: time.Now().Add(-time.Hour)})
	stranger := other.Issue(t, "stranger", pki.Options{})
	missing := filepath.Join(dir, "missing-key.pem")
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string // all in the error
	}{
		{"wrong CA", func(c *Config) { c.CACertFile = other.CertFile }, []string{"unknown CA", other.CertFile}},
		{"missing key", func(c *Config) { c.KeyFile = missing }, []string{"ETCD_KEY_FILE", missing, "no such file"}},
		{"key of another cert", func(c *Config) { c.KeyFile = stranger.KeyFile }, []string{client.CertFile, stranger.KeyFile, "does not match"}},
		{"cert without key", func(c *Config) { c.KeyFile = "" }, []string{"ETCD_CERT_FILE", "ETCD_KEY_FILE", "both"}},
		{"expired client cert", func(c *Config) { c.CertFile, c.KeyFile = expired.CertFile, expired.KeyFile }, []string{"expired", expired.CertFile}},
		{"cert of an unknown CA", func(c *Config) { c.CertFile, c.KeyFile = stranger.CertFile, stranger.KeyFile }, []string{"refused client certificate", stranger.CertFile}},
		{"no client cert", func(c *Config) { c.CertFile, c.KeyFile = "", "" }, []string{"client certificate", "ETCD_CERT_FILE"}},
		{"http endpoint", func(c *Config) { c.Endpoints = strings.Replace(c.Endpoints, "https", "http", 1) }, []string{"no endpoint", "https://"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			b, err := New(ctx, cfg)
			if err == nil {
				b.Close()
				t.Fatal("connected")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	t.Run("expired server cert", func(t *testing.T) {
		old := etcdserver.StartTLS(t, &etcdserver.TLS{Server: ca.Issue(t, "old-server", pki.Options{Server: true, NotAfter: time.Now().Add(-time.Hour)}), ClientCA: ca.CertFile, Client: client})
		cfg := good
		cfg.Endpoints = old.Endpoint
		b, err := New(t.Context(), cfg)
		if err == nil {
			b.Close()
			t.Fatal("connected")
		}
		if !strings.Contains(err.Error(), "server certificate has expired") {
			t.Errorf("error %q does not say the server certificate expired", err)
		}
	})

	t.Run("auth", func(t *testing.T) {
		const user, password = "petrel-user", "s3cret-Pa55word"
		srv.EnableAuth(t, map[string]string{user: password})
		ok := good
		ok.Username, ok.Password = user, password
		b, err := New(t.Context(), ok)
		if err != nil {
			t.Fatalf("right password: %v", err)
		}
		defer b.Close()
		if _, err := b.Get(t.Context(), datastore.KindIPPool, "tls-pool"); err != nil {
			t.Fatalf("read as %s: %v", user, err)
		}
		bad := ok
		bad.Password = "wrong-" + password
		b2, err := New(t.Context(), bad)
		if err == nil {
			b2.Close()
			t.Fatal("wrong password connected")
		}
		for _, w := range []string{user, "authentication failed"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("error %q shows the password", err)
		}
		if s := bad.String(); strings.Contains(s, password) {
			t.Errorf("Config.String %q shows the password", s)
		}
	})
}
