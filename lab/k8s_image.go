package lab

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"time"
)

// There is no registry here: the lab writes its images as `docker save`
// archives (one uncompressed layer) and every node's containerd imports
// them with `ctr -n k8s.io images import`. Tags other than latest keep
// the kubelet from trying to pull (imagePullPolicy IfNotPresent).
const (
	// BusyboxImage runs the test pods; its entrypoint sleeps until
	// SIGTERM, which also makes it the pods' sandbox (pause) image.
	BusyboxImage = "petrel.local/busybox:lab"
	PauseImage   = "petrel.local/pause:lab"
	petrelRepo   = "petrel.local/petrel"
)

// imageFile is one file of an image's layer: a copy of a host file, or a
// symlink when Link is set.
type imageFile struct {
	Path, From, Link string
}

// sleeper is PID 1 of the test pods and sandboxes: sleeps, exits at once on
// SIGTERM.
var sleeper = []string{"/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait; done"}

// busyboxImage is Debian's busybox-static with the applets the pods use.
func busyboxImage(out string) error {
	files := []imageFile{{Path: "bin/busybox", From: "/bin/busybox"}}
	for _, a := range []string{"sh", "sleep", "ping", "ip", "ls", "cat"} {
		files = append(files, imageFile{Path: "bin/" + a, Link: "busybox"})
	}
	return writeImage(out, []string{BusyboxImage, PauseImage}, sleeper, files)
}

// petrelImage is the petrel binary alone, on PATH as deploy/Dockerfile
// puts it; the manifests run `petrel ...`. It must be static.
func petrelImage(out, binary string, tags ...string) error {
	f, err := elf.Open(binary)
	if err != nil {
		return fmt.Errorf("petrel image: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("petrel image: %s is dynamically linked; build it with CGO_ENABLED=0 (make k8s-lab does)", binary)
		}
	}
	return writeImage(out, tags, []string{"petrel"}, []imageFile{{Path: "usr/local/bin/petrel", From: binary}})
}

// writeImage writes a one-layer docker archive with the given tags.
func writeImage(out string, tags, entrypoint []string, files []imageFile) error {
	layer, err := layerTar(files)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(layer)
	diffID := "sha256:" + hex.EncodeToString(sum[:])
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"created":      time.Unix(0, 0).UTC(),
		"config": map[string]any{
			"Env":        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
			"Entrypoint": entrypoint,
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	if err != nil {
		return err
	}
	csum := sha256.Sum256(config)
	configName := hex.EncodeToString(csum[:]) + ".json"
	layerName := hex.EncodeToString(sum[:]) + "/layer.tar"
	manifest, _ := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": tags, "Layers": []string{layerName}}})

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		name string
		data []byte
	}{{configName, config}, {layerName, layer}, {"manifest.json", manifest}} {
		if err := addTarFile(tw, e.name, 0o644, e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// layerTar builds a layer: the files, their parent directories and /tmp.
func layerTar(files []imageFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		var parents []string
		for d := path.Dir(p); d != "." && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
			dirs[d] = true
		}
		for _, d := range parents {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := mkdirs("tmp/x"); err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := mkdirs(f.Path); err != nil {
			return nil, err
		}
		if f.Link != "" {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: f.Path, Linkname: f.Link, Mode: 0o777, ModTime: time.Unix(0, 0)}); err != nil {
				return nil, err
			}
			continue
		}
		data, err := os.ReadFile(f.From)
		if err != nil {
			return nil, fmt.Errorf("image file %s: %w", f.Path, err)
		}
		if err := addTarFile(tw, f.Path, 0o755, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func addTarFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}
