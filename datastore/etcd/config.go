package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config is how to reach etcd: Calico's ETCD_* settings. The file fields
// are paths (ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE).
type Config struct {
	Endpoints  string // comma-separated URLs, as ETCD_ENDPOINTS
	CACertFile string // CA that signed etcd's server certificate ("" = system roots)
	CertFile   string // client certificate, for etcd's --client-cert-auth
	KeyFile    string // its private key
	Username   string // etcd auth (ETCD_USERNAME)
	Password   string // never logged nor put in an error
}

// String shows the settings without the password.
func (c Config) String() string {
	s := fmt.Sprintf("endpoints=%s ca=%q cert=%q key=%q user=%q", c.Endpoints, c.CACertFile, c.CertFile, c.KeyFile, c.Username)
	if c.Password != "" {
		s += " password=(set)"
	}
	return s
}

// probeTimeout bounds the TLS check done before handing over to clientv3.
const probeTimeout = 5 * time.Second

// clientConfig checks cfg and turns it into clientv3's. A certificate
// problem is found here, up front, with the file it concerns named:
// clientv3 would only report a timed-out request.
func clientConfig(ctx context.Context, cfg Config) (clientv3.Config, error) {
	eps := strings.Split(cfg.Endpoints, ",")
	// clientv3's own log repeats, as JSON on stderr, what our errors say.
	cc := clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Username: cfg.Username, Password: cfg.Password, Logger: zap.NewNop()}
	if (cfg.Username == "") != (cfg.Password == "") {
		return cc, errors.New("etcd: ETCD_USERNAME and ETCD_PASSWORD go together: set both or neither")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return cc, fmt.Errorf("etcd: ETCD_CERT_FILE (%q) and ETCD_KEY_FILE (%q) go together: set both or neither", cfg.CertFile, cfg.KeyFile)
	}
	secure := 0
	for _, ep := range eps {
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return cc, fmt.Errorf("etcd: endpoint %q: want a URL like https://10.0.0.1:2379", ep)
		}
		if u.Scheme == "https" {
			secure++
		}
	}
	files := cfg.CACertFile != "" || cfg.CertFile != ""
	switch {
	case secure == 0 && files:
		return cc, fmt.Errorf("etcd: certificate files are set but no endpoint in %q is https://", cfg.Endpoints)
	case secure == 0:
		return cc, nil
	case secure != len(eps):
		return cc, fmt.Errorf("etcd: endpoints %q mix http:// and https://", cfg.Endpoints)
	}
	tc, err := loadTLS(cfg)
	if err != nil {
		return cc, err
	}
	cc.TLS = tc
	for _, ep := range eps {
		if err := probe(ctx, ep, tc, cfg); err != nil {
			return cc, err
		}
	}
	return cc, nil
}

// loadTLS reads the files, naming the one at fault.
func loadTLS(cfg Config) (*tls.Config, error) {
	for _, f := range []struct{ setting, path string }{
		{"ETCD_CA_CERT_FILE", cfg.CACertFile}, {"ETCD_CERT_FILE", cfg.CertFile}, {"ETCD_KEY_FILE", cfg.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("etcd: %s: %w", f.setting, err)
		}
	}
	if cfg.CACertFile != "" {
		pem, err := os.ReadFile(cfg.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("etcd: ETCD_CA_CERT_FILE: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd: ETCD_CA_CERT_FILE %s: no PEM certificate in it", cfg.CACertFile)
		}
	}
	info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CACertFile}
	tc, err := info.ClientConfig()
	if err != nil {
		if cfg.CertFile != "" {
			return nil, fmt.Errorf("etcd: client certificate ETCD_CERT_FILE %s with key ETCD_KEY_FILE %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		return nil, fmt.Errorf("etcd: ETCD_CA_CERT_FILE %s: %w", cfg.CACertFile, err)
	}
	if cfg.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcd: client certificate ETCD_CERT_FILE %s with key ETCD_KEY_FILE %s: %w", cfg.CertFile, cfg.KeyFile, err)
		}
		now := time.Now()
		switch leaf := pair.Leaf; {
		case now.After(leaf.NotAfter):
			return nil, fmt.Errorf("etcd: client certificate ETCD_CERT_FILE %s expired at %s", cfg.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
		case now.Before(leaf.NotBefore):
			return nil, fmt.Errorf("etcd: client certificate ETCD_CERT_FILE %s is not valid before %s", cfg.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	return tc, nil
}

// probe asks etcd's /version over the same TLS settings clientv3 will
// use. A certificate error is final and explained; a network error is
// not ours to judge (clientv3 retries until etcd is back).
func probe(ctx context.Context, endpoint string, tc *tls.Config, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tc.Clone()}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(endpoint, "/")+"/version", nil)
	if err != nil {
		return fmt.Errorf("etcd: endpoint %q: %w", endpoint, err)
	}
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		return nil
	}
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		host      x509.HostnameError
		op        *net.OpError
	)
	ca := "the system's CAs"
	if cfg.CACertFile != "" {
		ca = "ETCD_CA_CERT_FILE " + cfg.CACertFile
	}
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("etcd %s: its server certificate is not signed by %s (unknown CA): %w", endpoint, ca, err)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Errorf("etcd %s: its server certificate has expired or is not valid yet: %w", endpoint, err)
	case errors.As(err, &host):
		return fmt.Errorf("etcd %s: its server certificate is not valid for this address: %w", endpoint, err)
	case !errors.As(err, &op):
	case op.Op == "remote error" && cfg.CertFile == "": // a TLS alert from etcd
		return fmt.Errorf("etcd %s refused the connection: it wants a client certificate (set ETCD_CERT_FILE and ETCD_KEY_FILE): %w", endpoint, err)
	case op.Op == "remote error":
		return fmt.Errorf("etcd %s refused client certificate ETCD_CERT_FILE %s (not signed by a CA etcd trusts): %w", endpoint, cfg.CertFile, err)
	case op.Op == "dial":
		return nil // down: clientv3 keeps trying
	}
	if ctx.Err() != nil {
		return nil // slow: the same
	}
	return fmt.Errorf("etcd %s: %w", endpoint, err)
}
