package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// The test Deployment, in namespace default.
const (
	TestDeployment = "petrel-lab-pods"
	daemonSet      = "petrel-node" // deploy/k8s's, in kube-system
)

// kubeNodesReady checks that want nodes are Ready and that the petrel
// DaemonSet has a ready, up-to-date pod on each.
func kubeNodesReady(ctx context.Context, c kubernetes.Interface, want int) error {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var notReady []string
	for _, n := range nodes.Items {
		if !nodeReady(&n) {
			notReady = append(notReady, n.Name)
		}
	}
	if len(nodes.Items) != want || len(notReady) > 0 {
		return fmt.Errorf("%d of %d nodes registered, not Ready: %v", len(nodes.Items), want, notReady)
	}
	ds, err := c.AppsV1().DaemonSets("kube-system").Get(ctx, daemonSet, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if !daemonSetDone(ds, want) {
		return fmt.Errorf("DaemonSet %s: %d/%d ready, %d updated", daemonSet, ds.Status.NumberReady, want, ds.Status.UpdatedNumberScheduled)
	}
	return nil
}

// daemonSetDone: every one of want pods is ready and of the current
// template.
func daemonSetDone(ds *appsv1.DaemonSet, want int) bool {
	s := ds.Status
	return s.ObservedGeneration >= ds.Generation && int(s.DesiredNumberScheduled) == want &&
		int(s.NumberReady) == want && int(s.UpdatedNumberScheduled) == want && s.NumberUnavailable == 0
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// runTestPods creates the test Deployment (sleeping busybox pods spread
// evenly over the nodes) and waits until its pods run with addresses.
func (k *kubeBuilder) runTestPods(ctx context.Context) error {
	replicas := int32(k.state.Kube.Replicas)
	if replicas == 0 {
		return nil
	}
	labels := map[string]string{"app": TestDeployment}
	grace := int64(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: TestDeployment, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: &grace,
					Containers:                    []corev1.Container{{Name: "sleep", Image: BusyboxImage, Command: sleeper}},
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
					}},
				},
			},
		},
	}
	k.step("creating Deployment default/%s (%d pods of %s)", TestDeployment, replicas, BusyboxImage)
	if _, err := k.client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	err := k.waitFor("the test pods", 3*time.Minute, func() error {
		pods, err := KubePods(ctx, k.client)
		if err != nil {
			return err
		}
		if len(pods) != int(replicas) {
			return fmt.Errorf("%d of %d pods running with an address", len(pods), replicas)
		}
		k.state.Pods = pods
		return nil
	})
	if err != nil {
		return err
	}
	for _, p := range k.state.Pods {
		k.step("pod %s on %s: %s", p.Name, p.Node, p.Addr)
	}
	return k.save()
}

// KubePods lists the test Deployment's running pods that have an address,
// each with its network namespace as /proc/PID/ns/net of one of its
// processes (the pods' namespaces are containerd's, not named ones).
func KubePods(ctx context.Context, c kubernetes.Interface) ([]PodState, error) {
	list, err := c.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + TestDeployment})
	if err != nil {
		return nil, err
	}
	var pods []PodState
	for _, p := range list.Items {
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		pid := podPid(string(p.UID))
		if pid == 0 {
			continue
		}
		pods = append(pods, PodState{Name: p.Namespace + "/" + p.Name, Node: p.Spec.NodeName,
			NS: fmt.Sprintf("/proc/%d/ns/net", pid), Addr: p.Status.PodIP})
	}
	slices.SortFunc(pods, func(a, b PodState) int { return strings.Compare(a.Node+a.Name, b.Node+b.Name) })
	return pods, nil
}

// podPid finds a process of the pod with this UID by its cgroup (the
// kubelet's cgroupfs names it pod<UID>).
func podPid(uid string) int {
	mark := []byte("/pod" + uid + "/")
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err == nil && bytes.Contains(cg, mark) {
			return pid
		}
	}
	return 0
}
