package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/petrel-net/petrel/internal/netnsbuild"
)

// StateRoot holds one directory per lab: state.json, the topology, pid
// files, logs, sockets and etcd's data.
const StateRoot = "/var/run/petrel-lab"

// NSPrefix starts every namespace a lab creates: "plab-<name>-<node>".
const NSPrefix = "plab-"

// State is what `up` recorded, in <dir>/state.json; `status` reads it.
type State struct {
	Name     string      `json:"name"`
	Topology string      `json:"topology"`
	Petrel   string      `json:"petrel,omitempty"` // the binary the daemons run
	EtcdURL  string      `json:"etcdURL,omitempty"`
	Nodes    []NodeState `json:"nodes"`
	Pods     []PodState  `json:"pods,omitempty"`
	Kube     *KubeState  `json:"kube,omitempty"` // a Kubernetes lab's
	// KubeAPI is the kube-apiserver an etcd lab runs beside its etcd
	// (label kube-apiserver), where the daemons read Services.
	KubeAPI *KubeAPIState `json:"kubeAPI,omitempty"`
	Ready   bool          `json:"ready"`
}

// datastoreEnv is how petrel commands reach the lab's datastore: its etcd,
// or a Kubernetes lab's API server.
func (s *State) datastoreEnv() []string {
	if s.Kube != nil {
		return []string{"DATASTORE_TYPE=kubernetes", "KUBECONFIG=" + s.Kube.Kubeconfig}
	}
	return []string{"DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS=" + s.EtcdURL}
}

// datastoreNode is the node whose namespace reaches the datastore: the
// etcd node, or a Kubernetes lab's control plane.
func (s *State) datastoreNode() *NodeState {
	for i := range s.Nodes {
		if s.Nodes[i].Role == "etcd" || s.Nodes[i].Role == RoleKubeControlPlane {
			return &s.Nodes[i]
		}
	}
	return nil
}

// petrelCmd runs a petrel client command inside ns against the lab's
// datastore, with the binary the lab runs.
func (s *State) petrelCmd(ns string, env []string, args ...string) (string, error) {
	bin := s.Petrel
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return "", err
		}
	}
	full := append(append([]string{"env"}, s.datastoreEnv()...), env...)
	return inNS(ns, append(append(full, bin), args...)...)
}

// NodeState is one topology node as built.
type NodeState struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Role   string `json:"role,omitempty"`
	NS     string `json:"netns"`
	Addr   string `json:"address,omitempty"`  // its first global IPv4 address (CIDR)
	Addr6  string `json:"address6,omitempty"` // its first global IPv6 address (CIDR)
	Socket string `json:"socket,omitempty"`   // petrel's API or birdc's socket
}

// PodState is one pod.
type PodState struct {
	Name string `json:"name"` // NAMESPACE/POD as given to petrel workload add
	Node string `json:"node"`
	NS   string `json:"netns"`
	Addr string `json:"address"` // IPv4; "" for an IPv6-only pod
	// Addr6 is its IPv6 address, when its node has an IPv6 address (a
	// dual-stack or IPv6-only pod).
	Addr6 string `json:"address6,omitempty"`
}

// Dir is the lab's state directory.
func Dir(name string) string { return filepath.Join(StateRoot, name) }

// NSName is the namespace of a node of lab name.
func NSName(lab, node string) string { return NSPrefix + lab + "-" + node }

func (b *builder) save() error {
	data, err := json.MarshalIndent(b.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(b.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(b.dir, "state.json"))
}

// Exists reports whether anything of lab name is there: its state
// directory or a namespace with its prefix.
func Exists(name string) bool {
	for _, d := range []string{Dir(name), KubeDir(name)} {
		if _, err := os.Stat(d); err == nil {
			return true
		}
	}
	nss, _ := labNamespaces(name)
	return len(nss) > 0
}

// labNamespaces are the namespaces of lab name: "plab-<name>-*".
func labNamespaces(name string) ([]string, error) {
	nss, err := netnsbuild.List()
	var mine []string
	for _, ns := range nss {
		if strings.HasPrefix(ns, NSPrefix+name+"-") {
			mine = append(mine, ns)
		}
	}
	return mine, err
}

// Load reads a lab's state.json.
func Load(name string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(Dir(name), "state.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no lab %s (nothing in %s)", name, Dir(name))
		}
		return nil, err
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(Dir(name), "state.json"), err)
	}
	return &s, nil
}

// Labs lists the labs present on this machine: state directories and
// namespaces with the lab prefix.
func Labs() []string {
	seen := map[string]bool{}
	entries, _ := os.ReadDir(StateRoot)
	for _, e := range entries {
		if e.IsDir() && labNameRE.MatchString(e.Name()) {
			seen[e.Name()] = true
		}
	}
	nss, _ := netnsbuild.List()
	for _, ns := range nss {
		if rest, ok := strings.CutPrefix(ns, NSPrefix); ok {
			if name, _, ok := strings.Cut(rest, "-"); ok && labNameRE.MatchString(name) {
				seen[name] = true
			}
		}
	}
	for _, pname := range markedPids("") {
		if labNameRE.MatchString(pname) {
			seen[pname] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// ResolveName turns a lab name or a topology file into a lab name.
func ResolveName(arg string) (string, error) {
	if strings.HasSuffix(arg, ".yml") || strings.HasSuffix(arg, ".yaml") {
		t, err := LoadTopology(arg)
		if err != nil {
			return "", err
		}
		return t.Name, nil
	}
	if !labNameRE.MatchString(arg) {
		return "", fmt.Errorf("%q is neither a lab name nor a .clab.yml file", arg)
	}
	return arg, nil
}
