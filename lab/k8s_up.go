package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"
)

// kubeBuilder builds a Kubernetes lab on what builder made (namespaces,
// links, addresses).
type kubeBuilder struct {
	*builder
	dir    string // KubeDir
	pki    *pki
	images []string // docker archives every node imports
	nodes  map[string]*kubeNode
	client kubernetes.Interface
}

// buildKube runs the control plane, the nodes, applies deploy/crds and
// deploy/k8s (with the lab's petrel image), the default IPPool and a test
// Deployment, and waits until its pods reach each other.
func (b *builder) buildKube(ctx context.Context) error {
	cp := b.node(RoleKubeControlPlane)
	k := &kubeBuilder{builder: b, dir: KubeDir(b.state.Name), nodes: map[string]*kubeNode{}}
	b.state.Kube = &KubeState{Dir: k.dir, ControlPlane: cp.Name, Replicas: b.topo.Topology.Nodes[cp.Name].Pods()}
	if err := b.save(); err != nil {
		return err
	}
	var err error
	if k.pki, err = newPKI(filepath.Join(k.dir, "pki")); err != nil {
		return err
	}
	if err := k.buildImages(); err != nil {
		return err
	}
	if err := k.startControlPlane(ctx, cp); err != nil {
		return err
	}
	if err := k.save(); err != nil {
		return err
	}
	crds, err := readManifests(filepath.Join(b.deployDir(), "crds"))
	if err != nil {
		return err
	}
	k.step("applying %d CRDs (deploy/crds)", len(crds))
	if err := applyManifests(ctx, &k.state, crds, k.opts.Out); err != nil {
		return err
	}
	if err := k.waitFor("the CRDs", time.Minute, func() error { _, err := b.petrelCmd(cp.NS, nil, "get", "ippools"); return err }); err != nil {
		return err
	}
	if err := b.applyResources(); err != nil {
		return err
	}
	for _, n := range b.kubeNodes() {
		if err := k.startKubeNode(n); err != nil {
			return err
		}
	}
	if err := b.save(); err != nil {
		return err
	}
	objs, err := readManifests(filepath.Join(b.deployDir(), "k8s"))
	if err != nil {
		return err
	}
	for _, u := range objs {
		setImage(u, b.state.Kube.PetrelImage)
	}
	k.step("applying deploy/k8s with image %s", b.state.Kube.PetrelImage)
	if err := applyManifests(ctx, &k.state, objs, k.opts.Out); err != nil {
		return err
	}
	k.step("waiting for the nodes to be Ready and the petrel DaemonSet to be ready on each")
	if err := k.waitFor("nodes and DaemonSet", 5*time.Minute, func() error { return kubeNodesReady(ctx, k.client, len(b.kubeNodes())) }); err != nil {
		return err
	}
	if err := k.runTestPods(ctx); err != nil {
		return err
	}
	return b.waitPings()
}

// deployDir holds crds/ and k8s/: Options.DeployDir, or the directory above
// the topology's (deploy/lab/k8s3.clab.yml → deploy/).
func (b *builder) deployDir() string {
	if b.opts.DeployDir != "" {
		return b.opts.DeployDir
	}
	return filepath.Join(filepath.Dir(b.state.Topology), "..")
}

// kubeNodes are the kube-node nodes, in state order.
func (b *builder) kubeNodes() []*NodeState {
	var res []*NodeState
	for i := range b.state.Nodes {
		if b.state.Nodes[i].Role == RoleKubeNode {
			res = append(res, &b.state.Nodes[i])
		}
	}
	return res
}

// buildImages writes the busybox (test pods, sandboxes) and petrel images,
// the latter tagged by the binary's hash.
func (k *kubeBuilder) buildImages() error {
	dir := filepath.Join(k.dir, "images")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	bin := k.opts.ImageBinary
	if bin == "" {
		bin = k.opts.Petrel
	}
	tag, err := fileTag(bin)
	if err != nil {
		return err
	}
	k.state.Kube.PetrelImage = petrelRepo + ":" + tag
	k.step("building images %s and %s", k.state.Kube.PetrelImage, BusyboxImage)
	busybox, petrel := filepath.Join(dir, "busybox.tar"), filepath.Join(dir, "petrel.tar")
	if err := busyboxImage(busybox); err != nil {
		return err
	}
	if err := petrelImage(petrel, bin, k.state.Kube.PetrelImage); err != nil {
		return err
	}
	k.images = []string{busybox, petrel}
	return nil
}

// fileTag is an image tag from a file's content.
func fileTag(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "lab-" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// waitFor polls probe until it passes, giving up early (with its log's
// tail) when a process the lab started has exited.
func (k *kubeBuilder) waitFor(what string, timeout time.Duration, probe func() error) error {
	var dead *proc
	err := poll(timeout, time.Second, func() error {
		for _, p := range k.procs {
			if p.exited() {
				dead = p
				return errExited
			}
		}
		return probe()
	})
	if dead != nil {
		return fmt.Errorf("waiting for %s: %s exited; last lines of %s:\n%s", what, dead.name, dead.log, tailFile(dead.log, 20))
	}
	if err != nil {
		return fmt.Errorf("%s not ready after %v: %w", what, timeout, err)
	}
	return nil
}
