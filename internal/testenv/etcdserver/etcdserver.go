// Package etcdserver runs a throw-away etcd (Debian's etcd binary) on
// loopback for tests, and stops and removes it afterwards.
package etcdserver

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/petrel-net/petrel/internal/testenv"
)

// Server is a running etcd.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	args     []string
	log      string
}

func freePort(t testing.TB) int { return testenv.FreePort(t) }

// Start runs etcd with its data in a temp dir; the test skips when no etcd
// binary is installed (make deps installs Debian's etcd-server).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install etcd-server, or make deps)")
	}
	dir := t.TempDir()
	client, peer := freePort(t), freePort(t)
	s := &Server{
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d", client),
		log:      filepath.Join(dir, "etcd.log"),
		args: []string{bin, "--data-dir", filepath.Join(dir, "data"), "--name", "test",
			"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
			"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
			"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
			"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
			"--initial-cluster", fmt.Sprintf("test=http://127.0.0.1:%d", peer)},
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
		if resp, err := http.Get(s.Endpoint + "/health"); err == nil {
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
