package lab

import (
	"fmt"
	"os"
	"path/filepath"
)

// KubeRoot holds a Kubernetes lab's bulk, one directory per lab: the
// PKI, the images and each node's containerd, kubelet and overlay files.
// It is on disk, not under StateRoot, and outside the /etc, /opt,
// /var/lib, /run and /var/log the nodes overlay or replace (an overlay's
// upper directory cannot be inside its lower one).
const KubeRoot = "/var/cache/petrel-lab"

// KubeVersion is the Kubernetes release the lab runs (hack/k8s-binaries.sh
// builds it; KUBE_VERSION overrides both).
const KubeVersion = "v1.37.2"

// KubeState is what up recorded of a Kubernetes lab.
type KubeState struct {
	Dir          string `json:"dir"`          // KubeDir(lab)
	ControlPlane string `json:"controlPlane"` // its node
	Server       string `json:"server"`       // the API server's URL
	Kubeconfig   string `json:"kubeconfig"`   // an admin's (system:masters)
	PetrelImage  string `json:"petrelImage"`  // the DaemonSet's image
	Replicas     int    `json:"replicas"`     // of the test Deployment
}

// KubeDir is a Kubernetes lab's directory under KubeRoot.
func KubeDir(lab string) string { return filepath.Join(KubeRoot, lab) }

// KubeBinary is the path of a Kubernetes command built by
// hack/k8s-binaries.sh, or an error saying how to build it.
func KubeBinary(name string) (string, error) {
	cache := os.Getenv("PETREL_CACHE")
	if cache == "" {
		cache = "/var/cache/petrel"
	}
	version := os.Getenv("KUBE_VERSION")
	if version == "" {
		version = KubeVersion
	}
	p := filepath.Join(cache, name+"-"+version, name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s %s not built (%s missing): run hack/k8s-binaries.sh kube-apiserver kube-controller-manager kube-scheduler kubelet (make k8s-binaries; a cold build takes long)", name, version, p)
	}
	return p, nil
}
