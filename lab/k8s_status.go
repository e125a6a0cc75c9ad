package lab

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeProcs are the processes a Kubernetes lab's nodes run.
var kubeProcs = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet"}

// kubeView is what the API server says of a Kubernetes lab.
type kubeView struct {
	nodes  []corev1.Node
	petrel map[string]corev1.Pod // the DaemonSet's pod by node
	ds     string                // "3/3 ready, 3 up to date, image ..."
	err    error
}

// gatherKube asks the API server for the nodes, the petrel DaemonSet and
// the test pods (which replace the recorded ones: pods come and go).
func (st *labStatus) gatherKube() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kv := &kubeView{petrel: map[string]corev1.Pod{}}
	st.kube = kv
	c, err := KubeClient(st.state)
	if err == nil {
		var nodes *corev1.NodeList
		if nodes, err = c.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
			kv.nodes = nodes.Items
		}
	}
	if err != nil {
		kv.err = err
		st.problem("API server: %v", err)
		return
	}
	for _, n := range kv.nodes {
		if !nodeReady(&n) {
			st.problem("node %s is not Ready", n.Name)
		}
	}
	want := len(st.state.kubeNodeNames())
	if len(kv.nodes) != want {
		st.problem("%d of %d nodes registered", len(kv.nodes), want)
	}
	if ds, err := c.AppsV1().DaemonSets("kube-system").Get(ctx, daemonSet, metav1.GetOptions{}); err != nil {
		st.problem("DaemonSet %s: %v", daemonSet, err)
	} else {
		image := ""
		if cs := ds.Spec.Template.Spec.Containers; len(cs) > 0 {
			image = cs[0].Image
		}
		kv.ds = fmt.Sprintf("%d/%d ready, %d up to date, image %s", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled, ds.Status.UpdatedNumberScheduled, image)
		if !daemonSetDone(ds, want) {
			st.problem("DaemonSet %s: %s", daemonSet, kv.ds)
		}
	}
	if pods, err := c.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=" + daemonSet}); err == nil {
		for _, p := range pods.Items {
			kv.petrel[p.Spec.NodeName] = p
		}
	}
	pods, err := KubePods(ctx, c)
	if err != nil {
		st.problem("test pods: %v", err)
	}
	st.state.Pods = pods
	if len(pods) != st.state.Kube.Replicas {
		st.problem("%d of %d test pods running with an address", len(pods), st.state.Kube.Replicas)
	}
}

// kubeNodeNames are the names of the kube-node nodes.
func (s *State) kubeNodeNames() []string {
	var names []string
	for _, n := range s.Nodes {
		if n.Role == RoleKubeNode {
			names = append(names, n.Name)
		}
	}
	return names
}

func (kv *kubeView) render(w io.Writer) {
	if kv.err != nil {
		fmt.Fprintf(w, "Kubernetes: %v\n", kv.err)
		return
	}
	fmt.Fprintf(w, "Kubernetes: DaemonSet kube-system/%s %s\n", daemonSet, kv.ds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS\tINTERNAL-IP\tPETREL POD")
	for _, n := range kv.nodes {
		status := "NotReady"
		if nodeReady(&n) {
			status = "Ready"
		}
		var ips []string
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ips = append(ips, a.Address)
			}
		}
		p, ok := kv.petrel[n.Name]
		pod := "-"
		if ok {
			pod = fmt.Sprintf("%s %s ready=%v", p.Name, p.Status.Phase, podReady(&p))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n.Name, status, strings.Join(ips, ","), pod)
	}
	tw.Flush()
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
