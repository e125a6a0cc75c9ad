package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/petrel-net/petrel/lab"
)

// k8sLabPrereqs skips the test unless this machine can run a Kubernetes
// lab: root, the node packages (make deps) and the Kubernetes binaries
// (make k8s-binaries, a long cold build the suite does not start itself).
func k8sLabPrereqs(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("k8s lab: needs root (network and mount namespaces, cgroups)")
	}
	for _, f := range []string{"/usr/bin/containerd", "/usr/sbin/runc", "/usr/bin/ctr", "/bin/busybox", "/usr/lib/cni/loopback", "/usr/lib/cni/portmap", "/usr/bin/etcd"} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("k8s lab: %s missing (make deps installs containerd, runc, busybox-static, containernetworking-plugins, etcd-server)", f)
		}
	}
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"} {
		if _, err := lab.KubeBinary(c); err != nil {
			t.Skipf("k8s lab: %v", err)
		}
	}
}

// TestLabK8s3 is `sudo make k8s-lab`: a real cluster whose three nodes run
// containerd and a kubelet, petrel as deploy/k8s's DaemonSet and 6 test
// pods on petrel's IPAM and routes. It checks the cluster, deletes a pod
// (its address goes back to IPAM, its route away), takes the lab down
// (nothing left) and brings it up a second time.
func TestLabK8s3(t *testing.T) {
	k8sLabPrereqs(t)
	const name = "k8s3"
	_, _ = labCLI(t, "down", name) // a previous run's leftovers
	t.Cleanup(func() { _, _ = labCLI(t, "down", name) })
	hostBefore := hostNodePaths()

	for round := 1; round <= 2; round++ {
		start := time.Now()
		out, err := labCLI(t, "up", "deploy/lab/k8s3.clab.yml")
		if err != nil {
			status, _ := labCLI(t, "status", name)
			t.Fatalf("round %d: up: %v\n%s\nstatus:\n%s", round, err, out, status)
		}
		t.Logf("round %d: up took %v", round, time.Since(start).Round(time.Second))
		checkK8sLab(t, name)
		if round == 1 {
			rollPetrel(t, name)
			deleteTestPod(t, name)
		}
		if out, err := labCLI(t, "down", name); err != nil {
			t.Fatalf("round %d: down: %v\n%s", round, err, out)
		}
		if left := k8sLabLeftovers(t, name); len(left) > 0 {
			t.Fatalf("round %d: down left %v", round, left)
		}
		for p := range hostNodePaths() {
			if !hostBefore[p] {
				t.Errorf("round %d: %s appeared on the host (a node's path that should stay in its mount namespace)", round, p)
			}
		}
	}
}

// checkK8sLab: status healthy, every node Ready, the DaemonSet 3/3, the
// test pods Running with distinct addresses from the pool.
func checkK8sLab(t *testing.T, name string) {
	t.Helper()
	out, err := labCLI(t, "status", name)
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	t.Logf("status:\n%s", out)
	_, c := k8sLabClient(t, name)
	nodes, err := c.CoreV1().Nodes().List(bg(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 3 {
		t.Fatalf("nodes: %v (%d)", err, len(nodes.Items))
	}
	ds, err := c.AppsV1().DaemonSets("kube-system").Get(bg(), "petrel-node", metav1.GetOptions{})
	if err != nil || ds.Status.NumberReady != 3 {
		t.Fatalf("DaemonSet petrel-node: %v, %+v", err, ds.Status)
	}
	pods, err := lab.KubePods(bg(), c)
	if err != nil || len(pods) != 6 {
		t.Fatalf("test pods: %v %+v", err, pods)
	}
	pool := netip.MustParsePrefix("192.168.0.0/16")
	seen, perNode := map[string]bool{}, map[string]int{}
	for _, p := range pods {
		a, err := netip.ParseAddr(p.Addr)
		if err != nil || !pool.Contains(a) || seen[p.Addr] {
			t.Fatalf("pod %s: address %q not a distinct one of %s", p.Name, p.Addr, pool)
		}
		seen[p.Addr] = true
		perNode[p.Node]++
	}
	if len(perNode) != 3 {
		t.Fatalf("pods not spread over the 3 nodes: %v", perNode)
	}
}

// rollPetrel rolls the petrel DaemonSet to a new image tag (the same
// binary: a new pod per node, one node at a time, as for an upgrade) while
// pods ping each other at ≥ 100/s across nodes and within one: no echo may
// be lost.
func rollPetrel(t *testing.T, name string) {
	t.Helper()
	st, c := k8sLabClient(t, name)
	image, err := lab.KubeImportPetrel(st, petrelBin, "lab-roll")
	if err != nil {
		t.Fatal(err)
	}
	pods, err := lab.KubePods(bg(), c)
	if err != nil {
		t.Fatal(err)
	}
	byName, perNode := map[string][2]string{}, map[string]int{}
	for _, p := range pods {
		perNode[p.Node]++
		byName[fmt.Sprintf("%s-pod%d", p.Node, perNode[p.Node])] = [2]string{p.NS, p.Addr}
	}
	pings := startLabPings(t, byName)
	time.Sleep(2 * time.Second)
	ds, err := c.AppsV1().DaemonSets("kube-system").Get(bg(), "petrel-node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := &ds.Spec.Template.Spec
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			cs[i].Image = image
		}
	}
	start := time.Now()
	if _, err := c.AppsV1().DaemonSets("kube-system").Update(bg(), ds, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = pollFor(4*time.Minute, func() error {
		ds, err := c.AppsV1().DaemonSets("kube-system").Get(bg(), "petrel-node", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := ds.Status
		if s.ObservedGeneration < ds.Generation || s.UpdatedNumberScheduled != 3 || s.NumberReady != 3 || s.NumberUnavailable != 0 {
			return fmt.Errorf("DaemonSet: %d updated, %d ready", s.UpdatedNumberScheduled, s.NumberReady)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rolling update to %s: %v", image, err)
	}
	t.Logf("rolling update to %s took %v", image, time.Since(start).Round(time.Second))
	time.Sleep(3 * time.Second)
	checkLabPings(t, pings)
}

// deleteTestPod deletes a test pod and checks that IPAM no longer gives its
// address to it, that its /32 (and its veth) leave its node, that no other
// node routes the address but by its block, and that `petrel ipam check`
// is clean.
func deleteTestPod(t *testing.T, name string) {
	t.Helper()
	st, c := k8sLabClient(t, name)
	pods, err := lab.KubePods(bg(), c)
	if err != nil || len(pods) == 0 {
		t.Fatalf("test pods: %v", err)
	}
	victim := pods[0]
	_, podName, _ := strings.Cut(victim.Name, "/")
	nodeNS := lab.NSName(name, victim.Node)
	dev := routeDev(t, nodeNS, victim.Addr)
	if dev == "" {
		t.Fatalf("no /32 route for %s on %s", victim.Addr, victim.Node)
	}
	if err := c.CoreV1().Pods("default").Delete(bg(), podName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	blocks := ipamBlocks(t, st)
	err = pollFor(90*time.Second, func() error {
		if _, err := c.CoreV1().Pods("default").Get(bg(), podName, metav1.GetOptions{}); err == nil {
			return fmt.Errorf("pod %s still there", podName)
		}
		if owner := ipamOwner(t, blocks, victim.Addr); owner == podName {
			return fmt.Errorf("IPAM still gives %s to %s", victim.Addr, owner)
		}
		if d := routeDev(t, nodeNS, victim.Addr); d == dev {
			return fmt.Errorf("%s: %s/32 still via %s", victim.Node, victim.Addr, dev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"node1", "node2", "node3"} {
		if n != victim.Node && routeDev(t, lab.NSName(name, n), victim.Addr) != "" {
			t.Errorf("%s has a /32 for %s", n, victim.Addr)
		}
	}
	t.Logf("deleted pod %s (%s on %s, via %s): IPAM no longer gives it the address, the route left", podName, victim.Addr, victim.Node, dev)
	if out, err := petrelIn(t, st, "ipam", "check"); err != nil {
		t.Fatalf("petrel ipam check: %v\n%s", err, out)
	}
	// The Deployment's replacement pod joins the others.
	if err := pollFor(2*time.Minute, func() error {
		out, err := labCLI(t, "status", name)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	}); err != nil {
		t.Fatalf("after the delete: %v", err)
	}
}

func k8sLabClient(t *testing.T, name string) (*lab.State, kubernetes.Interface) {
	t.Helper()
	st, err := lab.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := lab.KubeClient(st)
	if err != nil {
		t.Fatal(err)
	}
	return st, c
}

// routeDev is the device of ns's /32 route for addr ("" when none).
func routeDev(t *testing.T, ns, addr string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "route", "show", "exact", addr+"/32").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route: %v %s", err, out)
	}
	f := strings.Fields(string(out))
	for i := range f {
		if f[i] == "dev" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// ipamBlocks reads the IPAMBlock resources anew on each call.
func ipamBlocks(t *testing.T, st *lab.State) func() []map[string]any {
	t.Helper()
	return func() []map[string]any {
		cfg, err := lab.KubeRest(st)
		if err != nil {
			t.Fatal(err)
		}
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		list, err := dyn.Resource(schema.GroupVersionResource{Group: "crd.projectcalico.org", Version: "v1", Resource: "ipamblocks"}).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []map[string]any
		for _, b := range list.Items {
			spec, _ := b.Object["spec"].(map[string]any)
			out = append(out, spec)
		}
		return out
	}
}

// ipamOwner is the pod IPAM gives addr to ("" when free).
func ipamOwner(t *testing.T, blocks func() []map[string]any, addr string) string {
	t.Helper()
	a := netip.MustParseAddr(addr)
	for _, b := range blocks() {
		cidr, err := netip.ParsePrefix(fmt.Sprint(b["cidr"]))
		if err != nil || !cidr.Contains(a) {
			continue
		}
		ordinal := int(a.As4()[3] - cidr.Addr().As4()[3]) // blocks are at most /24
		allocs, _ := b["allocations"].([]any)
		if ordinal >= len(allocs) || allocs[ordinal] == nil {
			return ""
		}
		attrs, _ := b["attributes"].([]any)
		idx := int(allocs[ordinal].(int64))
		if idx < len(attrs) {
			attr, _ := attrs[idx].(map[string]any)
			sec, _ := attr["secondary"].(map[string]any)
			if pod, ok := sec["pod"].(string); ok {
				return pod
			}
		}
		return "?"
	}
	return ""
}

// petrelIn runs a petrel client command against the lab's API server from
// the control plane's namespace.
func petrelIn(t *testing.T, st *lab.State, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", lab.NSName(st.Name, st.Kube.ControlPlane), petrelBin}, args...)...)
	cmd.Env = append(os.Environ(), "DATASTORE_TYPE=kubernetes", "KUBECONFIG="+st.Kube.Kubeconfig)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// k8sLabLeftovers adds to labLeftovers what a Kubernetes lab could leave:
// its directory under /var/cache/petrel-lab, the kubelets' cgroups, mounts
// and processes of its nodes (containerd shims, pods).
func k8sLabLeftovers(t *testing.T, name string) []string {
	t.Helper()
	left := labLeftovers(t, name)
	if _, err := os.Stat(lab.KubeDir(name)); err == nil {
		left = append(left, "dir "+lab.KubeDir(name))
	}
	cgs, _ := filepath.Glob("/sys/fs/cgroup/*/plab-" + name + "-*")
	left = append(left, cgs...)
	infos, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	for _, f := range infos {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), lab.KubeDir(name)) {
			left = append(left, "mounts of "+f)
		}
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), lab.KubeDir(name)) {
			left = append(left, "process "+f+": "+strings.ReplaceAll(string(data), "\x00", " "))
		}
	}
	return left
}

// hostNodePaths are the paths a Kubernetes node writes (CNI, containerd,
// kubelet) that exist on the host: a lab must create none of them there.
func hostNodePaths() map[string]bool {
	have := map[string]bool{}
	for _, p := range []string{"/etc/cni", "/opt/cni", "/run/containerd", "/var/lib/containerd", "/var/lib/kubelet",
		"/var/log/pods", "/var/log/containers", "/var/run/petrel", "/usr/libexec/kubernetes", "/opt/containerd"} {
		if _, err := os.Stat(p); err == nil {
			have[p] = true
		}
	}
	return have
}

func pollFor(timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}
