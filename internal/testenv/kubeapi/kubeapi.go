// Package kubeapi runs a real etcd and kube-apiserver on loopback for tests,
// with petrel's CRDs installed. The kubernetes datastore must be tested
// against a real API server: a fake clientset tests neither CAS semantics,
// watches nor CRD schemas.
//
// The kube-apiserver binary comes from hack/kube-apiserver.sh, which builds it
// once into a cache outside the repo (`make kube-apiserver`). Set
// PETREL_KUBE_APISERVER to use another binary.
package kubeapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/petrel-net/petrel/internal/testenv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

const (
	etcdBinary   = "/usr/bin/etcd"
	readyTimeout = 60 * time.Second
	crdTimeout   = 30 * time.Second
)

// Env is a running API server.
type Env struct {
	// Kubeconfig is the path of a kubeconfig file for the server (bearer
	// token, TLS verification skipped: the serving cert is self-signed).
	Kubeconfig string
	// RestConfig talks to the server with the same credentials.
	RestConfig *rest.Config
}

// Start runs etcd and kube-apiserver on random loopback ports, installs the
// CRDs from deploy/crds and returns when they are served. Both processes are
// stopped and their files removed when the test ends, pass or fail. The test
// is skipped if the kube-apiserver binary cannot be built.
func Start(t testing.TB) *Env {
	t.Helper()
	apiserver := apiserverBinary(t)
	if _, err := os.Stat(etcdBinary); err != nil {
		t.Skipf("kubeapi: %s not installed (apt-get install etcd-server): %v", etcdBinary, err)
	}
	dir := t.TempDir() // its removal is registered first, so it runs after the kills below

	etcdURL := startEtcd(t, dir)

	token := randomHex(t, 16)
	saKey := filepath.Join(dir, "sa.key")
	writeRSAKey(t, saKey)
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, token+`,petrel-test,petrel-test-uid,"system:masters"`+"\n")
	port := freePort(t)
	host := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKey,
		"--service-account-signing-key-file=" + saKey,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--allow-privileged=true",
	}
	apiLog := filepath.Join(dir, "kube-apiserver.log")
	proc := startProcess(t, "kube-apiserver", apiserver, args, apiLog)

	httpc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer httpc.CloseIdleConnections()
	if err := waitHTTP(httpc, host+"/readyz", token, proc, readyTimeout); err != nil {
		dumpLog(t, apiLog)
		t.Fatalf("kubeapi: kube-apiserver not ready: %v", err)
	}

	cfg := &rest.Config{
		Host:            host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		// Tests make bursts of requests; client-side throttling only slows them.
		QPS:   1000,
		Burst: 2000,
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	writeFile(t, kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: petrel-test
  cluster:
    server: %s
    insecure-skip-tls-verify: true
users:
- name: petrel-test
  user:
    token: %s
contexts:
- name: petrel-test
  context:
    cluster: petrel-test
    user: petrel-test
current-context: petrel-test
`, host, token))

	if err := installCRDs(t, cfg); err != nil {
		dumpLog(t, apiLog)
		t.Fatalf("kubeapi: installing CRDs: %v", err)
	}
	return &Env{Kubeconfig: kubeconfig, RestConfig: rest.CopyConfig(cfg)}
}

var (
	binaryMu   sync.Mutex
	binaryPath string
)

// apiserverBinary returns the kube-apiserver path, building it through
// hack/kube-apiserver.sh at most once per test binary; it skips the test if
// the build fails or cannot finish before the test deadline.
func apiserverBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PETREL_KUBE_APISERVER"); p != "" {
		return p
	}
	binaryMu.Lock()
	defer binaryMu.Unlock()
	if binaryPath != "" {
		return binaryPath
	}
	root, err := repoRoot()
	if err != nil {
		t.Skipf("kubeapi: %v", err)
	}
	ctx := context.Background()
	// A cold build takes 15–25 minutes. Stop it in time to skip cleanly
	// rather than let the test binary time out; the go build cache keeps
	// the progress for the next run.
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if dl, ok := d.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-30*time.Second))
			defer cancel()
		}
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "kube-apiserver.sh"))
	cmd.Dir = root
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t.Logf("kubeapi: running hack/kube-apiserver.sh (a cold build takes 15–25 min; `make kube-apiserver` builds it ahead)")
	if err := cmd.Run(); err != nil {
		t.Skipf("kubeapi: kube-apiserver cannot be built (run `make kube-apiserver`): %v\n%s", err, tail(stderr.String(), 2000))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if fi, err := os.Stat(p); err != nil || fi.IsDir() {
		t.Skipf("kubeapi: hack/kube-apiserver.sh printed %q, not a binary", p)
	}
	binaryPath = p
	return p
}

// repoRoot walks up from the working directory (a test's package directory)
// to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func startEtcd(t testing.TB, dir string) string {
	t.Helper()
	client := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	peer := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	args := []string{
		"--name=default",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--log-level=warn",
	}
	logPath := filepath.Join(dir, "etcd.log")
	proc := startProcess(t, "etcd", etcdBinary, args, logPath)
	if err := waitHTTP(http.DefaultClient, client+"/health", "", proc, readyTimeout); err != nil {
		dumpLog(t, logPath)
		t.Fatalf("kubeapi: etcd not ready: %v", err)
	}
	return client
}

// process is a child started by startProcess; done closes when it exits.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProcess runs a child whose output goes to logPath and registers its
// termination with t.Cleanup.
func startProcess(t testing.TB, name, path string, args []string, logPath string) *process {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the test binary die without running cleanups, the kernel kills
	// the child too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := spawn(cmd); err != nil {
		logf.Close()
		t.Fatalf("kubeapi: starting %s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

var (
	spawnOnce sync.Once
	spawnReq  chan func()
)

// spawn starts cmd from one OS thread that never exits. Pdeathsig fires when
// the *thread* that forked the child exits, and Go may end threads (e.g. one
// a goroutine left locked after switching network namespace).
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReq = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for f := range spawnReq {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnReq <- func() { errc <- cmd.Start() }
	return <-errc
}

// waitHTTP polls url until it answers 200, the process exits or timeout.
func waitHTTP(c *http.Client, url, token string, p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("process exited: %v", p.err)
		default:
		}
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %v: %v", timeout, last)
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installCRDs creates every CRD in deploy/crds and waits until each is
// Established and its resources can be listed.
func installCRDs(t testing.TB, cfg *rest.Config) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(root, "deploy", "crds", "*.yaml"))
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), crdTimeout)
	defer cancel()
	var crds []*unstructured.Unstructured
	for _, f := range files {
		docs, err := readYAMLDocs(f)
		if err != nil {
			return err
		}
		for _, doc := range docs {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			if u.Object == nil {
				continue
			}
			created, err := dc.Resource(crdGVR).Create(ctx, u, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			crds = append(crds, created)
		}
	}
	for _, crd := range crds {
		if err := waitEstablished(ctx, dc, crd); err != nil {
			return fmt.Errorf("CRD %s: %w", crd.GetName(), err)
		}
	}
	t.Logf("kubeapi: %d CRDs established", len(crds))
	return nil
}

func waitEstablished(ctx context.Context, dc dynamic.Interface, crd *unstructured.Unstructured) error {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var version string
	for _, v := range versions {
		if m, ok := v.(map[string]any); ok && m["served"] == true {
			version, _ = m["name"].(string)
			break
		}
	}
	gvr := schema.GroupVersionResource{Group: group, Version: version, Resource: plural}
	for {
		err := func() error {
			u, err := dc.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return err
			}
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			established := false
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					established = true
				}
			}
			if !established {
				return errors.New("not Established")
			}
			// Established can precede the handler serving the resource.
			_, err = dc.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			return err
		}()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readYAMLDocs splits a multi-document YAML file on "---" lines.
func readYAMLDocs(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var docs [][]byte
	var cur bytes.Buffer
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimRight(line, " \t") == "---" {
			if strings.TrimSpace(cur.String()) != "" {
				docs = append(docs, bytes.Clone(cur.Bytes()))
			}
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if strings.TrimSpace(cur.String()) != "" {
		docs = append(docs, cur.Bytes())
	}
	return docs, sc.Err()
}

func freePort(t testing.TB) int { return testenv.FreePort(t) }

func writeRSAKey(t testing.TB, path string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der := x509.MarshalPKCS1PrivateKey(key)
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der})))
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func dumpLog(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	t.Logf("%s (tail):\n%s", filepath.Base(path), tail(string(b), 8000))
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
