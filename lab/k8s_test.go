package lab

import (
	"archive/tar"
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestKubeTopologyErrors(t *testing.T) {
	cp := "    cp: {labels: {petrel: kube-control-plane}}\n"
	node := "    n1: {labels: {petrel: kube-node}}\n"
	for _, tc := range []struct{ yaml, want string }{
		{node, "exactly one node labelled petrel: kube-control-plane, have 0"},
		{cp + node + "    cp2: {labels: {petrel: kube-control-plane}}\n", "have 2 [cp cp2]"},
		{cp, "at least one node labelled petrel: kube-node"},
		{cp + node + "    e: {labels: {petrel: etcd}}\n", "node e: label petrel: etcd does not belong in a Kubernetes lab"},
		{cp + "    n1: {labels: {petrel: kube-node, pods: \"2\"}}\n", "on a petrel or kube-control-plane node"},
	} {
		_, err := ParseTopology([]byte("name: k\ntopology:\n  nodes:\n" + tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
	topo, err := LoadTopology("../deploy/lab/k8s3.clab.yml")
	if err != nil || !topo.Kube() || topo.Topology.Nodes["cp"].Pods() != 6 {
		t.Fatalf("k8s3: %v", err)
	}
}

// The control plane must be a /29's first address: the kubernetes
// Service's ClusterIP is then the API server itself.
func TestServiceRange(t *testing.T) {
	if p, err := serviceRange(netip.MustParseAddr("10.0.0.1")); err != nil || p.String() != "10.0.0.0/29" {
		t.Errorf("10.0.0.1: %v %v", p, err)
	}
	if _, err := serviceRange(netip.MustParseAddr("10.0.0.100")); err == nil {
		t.Error("10.0.0.100: accepted")
	}
}

// Only the upstream petrel image changes, in init and app containers.
func TestSetImage(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"template": map[string]any{"spec": map[string]any{
		"initContainers": []any{map[string]any{"name": "i", "image": upstreamImage + ":latest"}},
		"containers":     []any{map[string]any{"name": "a", "image": upstreamImage + ":latest"}, map[string]any{"name": "b", "image": "other:1"}},
	}}}}}
	setImage(u, "petrel.local/petrel:x")
	for _, f := range []string{"initContainers", "containers"} {
		cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", f)
		for _, c := range cs {
			m := c.(map[string]any)
			want := "petrel.local/petrel:x"
			if m["name"] == "b" {
				want = "other:1"
			}
			if m["image"] != want {
				t.Errorf("%s %v: image %v, want %s", f, m["name"], m["image"], want)
			}
		}
	}
}

// The image archive is what `ctr images import` reads: manifest.json with
// the tags, a config whose diff_id is the layer's, the layer with the file.
func TestPetrelImageArchive(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "petrel")
	// A static ELF: this test binary is one only when cgo is off, so write
	// a minimal header by hand instead.
	if err := os.WriteFile(bin, minimalELF(), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "img.tar")
	if err := petrelImage(out, bin, "petrel.local/petrel:t"); err != nil {
		t.Fatal(err)
	}
	files := readTar(t, out)
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		t.Fatalf("manifest: %v %s", err, files["manifest.json"])
	}
	m := manifest[0]
	if len(m.RepoTags) != 1 || m.RepoTags[0] != "petrel.local/petrel:t" || len(m.Layers) != 1 {
		t.Fatalf("manifest %+v", m)
	}
	var config struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[m.Config], &config); err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + strings.TrimSuffix(m.Layers[0], "/layer.tar"); len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != want {
		t.Errorf("diff_ids %v, want [%s]", config.RootFS.DiffIDs, want)
	}
	layer := filepath.Join(dir, "layer.tar")
	if err := os.WriteFile(layer, files[m.Layers[0]], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := readTar(t, layer)["usr/local/bin/petrel"]; !ok {
		t.Error("layer has no usr/local/bin/petrel")
	}
}

func readTar(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
}

// minimalELF is a 64-bit ELF header with no program headers: static.
func minimalELF() []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	h[16], h[18] = 2, 62 // ET_EXEC, EM_X86_64
	h[20] = 1            // EV_CURRENT
	h[52] = 64           // e_ehsize
	return h
}
