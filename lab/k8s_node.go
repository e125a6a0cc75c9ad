package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/petrel-net/petrel/internal/netnsbuild"
)

// containerdSock is each node's containerd socket, inside the node's own /run.
const containerdSock = "/run/containerd/containerd.sock"

// nodeScript prepares a node's mount namespace (made for it by unshare,
// inside its network namespace) and becomes its containerd; the kubelet
// joins the same namespaces. There every node has /etc, /opt and /var/lib
// of its own (overlays on the host's: /etc/cni/net.d and /opt/cni/bin,
// which install-cni fills through the DaemonSet's hostPath volumes, are the
// node's, and so is the kubelet's fixed /var/lib/kubelet/device-plugins),
// an empty /run (containerd's state and shim sockets, the pods'
// netns files, /var/run/petrel) and /var/log, and the kernel settings the
// kubelet checks (protectKernelDefaults) as files, so that the host's are
// neither read nor written. Nothing of it is visible on the host, and all
// of it goes when the node's processes end.
const nodeScript = `#!/bin/sh
set -eu
nd=%[1]s
for d in /etc /opt /var/lib; do
	mkdir -p "$nd/upper$d" "$nd/work$d"
	mount -t overlay overlay -o "lowerdir=$d,upperdir=$nd/upper$d,workdir=$nd/work$d" "$d"
done
mount -t tmpfs -o mode=755 tmpfs /run
# Shared within the node (peer groups of its own; from the host's mounts,
# if shared, the node only receives): containerd wants hostPath volumes
# with HostToContainer propagation (the DaemonSet's /var/run/netns, whose
# /var/run it does not resolve, so it looks at /) on a shared or slave
# mount, and the host's / may be private.
mount --make-rshared /
mount -t tmpfs -o mode=755 tmpfs /var/log
mkdir -p /etc/cni/net.d /opt/cni/bin /run/containerd
# The standard plugins a node image has: the runtime's loopback, and the
# portmap that deploy/k8s's conflist chains.
cp /usr/lib/cni/loopback /usr/lib/cni/portmap /opt/cni/bin/
mkdir -p "$nd/sysctl"
for kv in vm/overcommit_memory=1 kernel/panic=10 kernel/panic_on_oops=1; do
	f="$nd/sysctl/$(echo "${kv%%%%=*}" | tr / .)"
	echo "${kv#*=}" >"$f"
	mount --bind "$f" "/proc/sys/${kv%%%%=*}"
done
exec containerd --config "$nd/containerd.toml"
`

// containerdConfig is a node's containerd (1.6, config version 2): its own
// root on disk, its state and socket in the node's /run, the lab's sandbox
// image, CNI where the DaemonSet installs it. restrict_oom_score_adj: the
// CRI gives sandboxes and critical pods a negative OOM score, which needs
// CAP_SYS_RESOURCE, and root may lack it (as on the build machines); runc
// then fails with "can't get final child's PID from pipe".
const containerdConfig = `version = 2
root = "%[1]s/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = %[2]q
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[3]q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
`

// kubeletConfig: cgroup v1 allowed (failCgroupV1), cgroupfs under a cgroup
// root of the node's own, serving on the node's address, no swap or kernel
// setting written, image GC and disk eviction out of the way of a shared
// disk, flexvolume plugins in the node's directory (not /usr/libexec).
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /%[1]s
containerRuntimeEndpoint: unix://%[2]s
address: %[3]s
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[4]s}
authorization: {mode: Webhook}
protectKernelDefaults: true
failSwapOn: false
resolvConf: ""
shutdownGracePeriod: 0s
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
volumePluginDir: %[5]s
`

// kubeNode is what the lab keeps of a running node.
type kubeNode struct {
	dir        string // KubeDir/<node>
	containerd *proc
	kubelet    *proc
}

// startKubeNode starts a node's containerd in a mount namespace of its own,
// imports the lab's images and starts its kubelet in the same namespaces.
func (k *kubeBuilder) startKubeNode(n *NodeState) error {
	if n.Addr == "" {
		return fmt.Errorf("kube-node %s has no IPv4 address (exec: [ip addr add ...])", n.Name)
	}
	nd := filepath.Join(k.dir, n.Name)
	if err := os.MkdirAll(nd, 0o755); err != nil {
		return err
	}
	files := map[string]string{
		"node.sh":         fmt.Sprintf(nodeScript, nd),
		"containerd.toml": fmt.Sprintf(containerdConfig, nd, containerdSock, PauseImage),
		"kubelet.yaml":    fmt.Sprintf(kubeletConfig, n.NS, containerdSock, hostOf(n.Addr), k.pki.path("ca.crt"), filepath.Join(nd, "volume-plugins")),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(nd, name), []byte(text), 0o644); err != nil {
			return err
		}
	}
	kubeconfig := filepath.Join(nd, "kubelet.kubeconfig")
	if err := k.pki.kubeconfig(kubeconfig, k.state.Kube.Server, "system:node:"+n.Name, "system:nodes"); err != nil {
		return err
	}
	if err := createCgroup(n.NS); err != nil {
		return fmt.Errorf("kube-node %s: cgroup %s: %w", n.Name, n.NS, err)
	}
	k.step("starting containerd on %s", n.Name)
	p, err := k.startRaw(n, "containerd", "nsenter", "--net="+netnsbuild.Path(n.NS),
		"unshare", "--mount", "--propagation", "slave", "/bin/sh", filepath.Join(nd, "node.sh"))
	if err != nil {
		return err
	}
	k.nodes[n.Name] = &kubeNode{dir: nd, containerd: p}
	// The DaemonSet's petrel serves its API in the node's /run, which the
	// host reaches through the node's processes.
	n.Socket = fmt.Sprintf("/proc/%d/root/run/petrel/petrel.sock", p.pid)
	if err := waitFor(p, "containerd on "+n.Name, 30*time.Second, func() error {
		_, err := k.ctr(n.Name, "version")
		return err
	}); err != nil {
		return err
	}
	for _, img := range k.images {
		if _, err := k.ctr(n.Name, "images", "import", img); err != nil {
			return fmt.Errorf("kube-node %s: %w", n.Name, err)
		}
	}
	kubelet, err := KubeBinary("kubelet")
	if err != nil {
		return err
	}
	k.step("starting kubelet on %s (%s)", n.Name, hostOf(n.Addr))
	k.nodes[n.Name].kubelet, err = k.startRaw(n, "kubelet", append(nodeEnter(p.pid), kubelet,
		"--config", filepath.Join(nd, "kubelet.yaml"), "--kubeconfig", kubeconfig,
		"--root-dir", filepath.Join(nd, "kubelet"), "--cert-dir", filepath.Join(nd, "kubelet-pki"),
		"--hostname-override", n.Name, "--node-ip", hostOf(n.Addr))...)
	return err
}

// nodeEnter is the command line that runs a program in the namespaces of
// a node's containerd (pid).
func nodeEnter(pid int) []string {
	return []string{"nsenter", "--target", strconv.Itoa(pid), "--mount", "--net"}
}

// ctr runs ctr against a node's containerd.
func (k *kubeBuilder) ctr(node string, args ...string) (string, error) {
	return ctrIn(k.nodes[node].containerd.pid, args...)
}

// ctrIn runs ctr against the containerd with this pid, in the k8s.io
// namespace the CRI uses.
func ctrIn(pid int, args ...string) (string, error) {
	out, err := run("nsenter", append(nodeEnter(pid), append([]string{"ctr", "--address", containerdSock, "-n", "k8s.io"}, args...)...)...)
	return strings.TrimSpace(out), err
}

// KubeImportPetrel writes a petrel image of binary tagged tag and imports
// it into every node's containerd, for a rolling update of the DaemonSet;
// it returns the image's name.
func KubeImportPetrel(s *State, binary, tag string) (string, error) {
	image := petrelRepo + ":" + tag
	archive := filepath.Join(s.Kube.Dir, "images", "petrel-"+tag+".tar")
	if err := petrelImage(archive, binary, image); err != nil {
		return "", err
	}
	for _, n := range s.kubeNodeNames() {
		pid, ok := pidFile(s.Name, n+"-containerd")
		if !ok {
			return "", fmt.Errorf("node %s: no containerd pid file", n)
		}
		if _, err := ctrIn(pid, "images", "import", archive); err != nil {
			return "", fmt.Errorf("node %s: %w", n, err)
		}
	}
	return image, nil
}
