// Package etcdserver runs a throw-away etcd (Debian's etcd binary) on
// loopback for tests, and stops and removes it afterwards.
package etcdserver

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/petrel-net/petrel/internal/testenv"
	"github.com/petrel-net/petrel/internal/testenv/pki"
)

// Server is a running etcd.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT, or https:// with TLS
	cmd      *exec.Cmd
	args     []string
	log      string
	health   *http.Client
	tls      *tls.Config // the health check's, for EnableAuth
}

// TLS makes etcd serve https with Server's certificate and require client
// certificates signed by ClientCA (--client-cert-auth); Client is the one
// the health check uses.
type TLS struct {
	Server   pki.Pair
	ClientCA string
	Client   pki.Pair
}

func freePort(t testing.TB) int { return testenv.FreePort(t) }

// Start runs etcd with its data in a temp dir; the test skips when no etcd
// binary is installed (make deps installs Debian's etcd-server).
func Start(t testing.TB) *Server { t.Helper(); return StartTLS(t, nil) }

// StartTLS is Start with TLS (nil: plain http).
func StartTLS(t testing.TB, tc *TLS) *Server {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server, or make deps)")
	}
	dir := t.TempDir()
	client, peer := freePort(t), freePort(t)
	scheme := "http"
	if tc != nil {
		scheme = "https"
	}
	s := &Server{
		Endpoint: fmt.Sprintf("%s://127.0.0.1:%d", scheme, client),
		log:      filepath.Join(dir, "etcd.log"),
		health:   http.DefaultClient,
		args: []string{bin, "--data-dir", filepath.Join(dir, "data"), "--name", "test",
			"--listen-client-urls", fmt.Sprintf("%s://127.0.0.1:%d", scheme, client),
			"--advertise-client-urls", fmt.Sprintf("%s://127.0.0.1:%d", scheme, client),
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
			"--initial-cluster", fmt.Sprintf("test=http://127.0.0.1:%d", peer)},
	}
	if tc != nil {
		s.args = append(s.args, "--cert-file", tc.Server.CertFile, "--key-file", tc.Server.KeyFile,
			"--client-cert-auth", "--trusted-ca-file", tc.ClientCA)
		cert, err := tls.LoadX509KeyPair(tc.Client.CertFile, tc.Client.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		// The health check only asks whether etcd answers; the code
		// under test verifies etcd's certificate.
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true} //nolint:gosec // see above
		s.health = &http.Client{Transport: &http.Transport{TLSClientConfig: s.tls}}
	}
	s.Resume(t)
	t.Cleanup(s.Stop)
	return s
}

// Stop kills etcd (its data stays for Resume).
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Resume starts etcd again on the same data and ports (an outage's end).
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := s.health.Get(s.Endpoint + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	data, _ := os.ReadFile(s.log)
	t.Fatalf("etcd not healthy after 15s:\n%s", data)
}

// EnableAuth turns etcd's auth on with a root user (etcd needs one) and
// users (name -> password; "" for a user authenticated by the CN of its
// client certificate) that may read and write Calico's /calico/ prefix.
func (s *Server) EnableAuth(t testing.TB, users map[string]string) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, TLS: s.tls, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := t.Context()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("etcd auth setup: %v", err)
		}
	}
	must(c.UserAdd(ctx, "root", "root-"+randomHex(t)))
	must(c.UserGrantRole(ctx, "root", "root"))
	must(c.RoleAdd(ctx, "calico"))
	must(c.RoleGrantPermission(ctx, "calico", "/calico/", clientv3.GetPrefixRangeEnd("/calico/"), clientv3.PermissionType(clientv3.PermReadWrite)))
	for name, password := range users {
		must(c.UserAddWithOptions(ctx, name, password, &clientv3.UserAddOptions{NoPassword: password == ""}))
		must(c.UserGrantRole(ctx, name, "calico"))
	}
	must(c.AuthEnable(ctx))
}

func randomHex(t testing.TB) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
