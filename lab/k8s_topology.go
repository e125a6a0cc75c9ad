package lab

import (
	"fmt"
	"sort"
)

// The roles of a Kubernetes lab (docs/lab.md, "Kubernetes labs").
const (
	// RoleKubeControlPlane runs etcd, kube-apiserver,
	// kube-controller-manager and kube-scheduler.
	RoleKubeControlPlane = "kube-control-plane"
	// RoleKubeNode runs its own containerd and kubelet; petrel comes to it
	// as the DaemonSet of deploy/k8s.
	RoleKubeNode = "kube-node"
)

// Kube reports whether the topology is a Kubernetes lab: one with a
// kube-control-plane node.
func (t *Topology) Kube() bool {
	for _, n := range t.Topology.Nodes {
		if n.Role() == RoleKubeControlPlane || n.Role() == RoleKubeNode {
			return true
		}
	}
	return false
}

// checkKube checks a Kubernetes lab: one control plane, at least one node,
// and none of the etcd-mode roles, whose daemons would not be part of it.
func (t *Topology) checkKube(cps []string) error {
	sort.Strings(cps)
	if len(cps) != 1 {
		return fmt.Errorf("topology: a Kubernetes lab wants exactly one node labelled %s: %s, have %d %v", LabelRole, RoleKubeControlPlane, len(cps), cps)
	}
	nodes := 0
	for _, name := range t.NodeNames() {
		switch t.Topology.Nodes[name].Role() {
		case RoleKubeNode:
			nodes++
		case "node", "etcd", "bird", "frr":
			return fmt.Errorf("topology: node %s: label %s: %s does not belong in a Kubernetes lab (petrel runs there as a DaemonSet)", name, LabelRole, t.Topology.Nodes[name].Role())
		}
	}
	if nodes == 0 {
		return fmt.Errorf("topology: a Kubernetes lab wants at least one node labelled %s: %s", LabelRole, RoleKubeNode)
	}
	return nil
}
