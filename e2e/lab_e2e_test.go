package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// labCLI runs `petrel lab ARGS...` as a subprocess, from the repository root.
func labCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	cmd := exec.Command(petrelBin, append([]string{"lab"}, args...)...)
	cmd.Dir = ".."
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// labLeftovers lists what of lab name is still there: namespaces with its
// prefix, its state directory, processes carrying its marker.
func labLeftovers(t *testing.T, name string) []string {
	t.Helper()
	var left []string
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "plab-"+name+"-") {
			left = append(left, "netns "+f[0])
		}
	}
	if _, err := os.Stat(filepath.Join("/var/run/petrel-lab", name)); err == nil {
		left = append(left, "dir /var/run/petrel-lab/"+name)
	}
	envs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, f := range envs {
		env, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == "PETREL_LAB="+name {
				stat, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "stat"))
				if !strings.Contains(string(stat), ") Z ") { // zombies are not running
					left = append(left, "process "+f)
				}
			}
		}
	}
	return left
}

// TestLabMesh3 is `sudo make lab`: up, a healthy status, and a down that
// leaves nothing behind.
func TestLabMesh3(t *testing.T) {
	labRoundTrip(t, "mesh3", 3, 6, 2)
}

// TestLabRacks: two subnets and a BIRD router (a global BGPPeer), VXLAN
// between the racks.
func TestLabRacks(t *testing.T) {
	labRoundTrip(t, "racks", 4, 4, 4)
}

// TestLabRacksRR: racks with the mesh off and the router's BIRD as route
// reflector for all four nodes: one session per node, full ping matrix.
func TestLabRacksRR(t *testing.T) {
	labRoundTrip(t, "racks_rr", 4, 4, 1, rackRoutesReflected)
}

// rackRoutesReflected: with the mesh off, a node can only have learned its
// rack neighbour's pod block (routed natively: same subnet) from the route
// reflector; wait until each of the four has it.
func rackRoutesReflected(t *testing.T, name string) {
	for node, via := range map[string]string{"node1": "10.1.0.2", "node2": "10.1.0.1", "node3": "10.2.0.4", "node4": "10.2.0.3"} {
		harness.Eventually(t, 30*time.Second, 250*time.Millisecond, func() error {
			out, err := exec.Command("ip", "-n", "plab-"+name+"-"+node, "route", "show", "proto", "bird").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "192.168.") && strings.Contains(line, "/26 via "+via+" ") {
					return nil
				}
			}
			return fmt.Errorf("%s: no pod block via %s learned over BGP:\n%s", node, via, out)
		}, node+" learns its rack neighbour's block from the reflector")
	}
}

// TestLabRacksFRR: racks_rr with FRR's bgpd as the route reflector.
func TestLabRacksFRR(t *testing.T) {
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		t.Skip("needs FRR (/usr/lib/frr/bgpd)")
	}
	labRoundTrip(t, "racks_frr", 4, 4, 1, rackRoutesReflected)
}

// labRoundTrip brings deploy/lab/NAME.clab.yml up, checks that status shows
// every petrel node with sessions Established sessions and a ping matrix
// of pods pods without loss, runs checks on the lab, and that down leaves
// nothing.
func labRoundTrip(t *testing.T, name string, nodes, pods, sessions int, checks ...func(*testing.T, string)) {
	up, status := labUpHealthy(t, name)
	if want := fmt.Sprintf("%d petrel nodes, %d pods", nodes, pods); !strings.Contains(up, want) {
		t.Errorf("up output lacks %q", want)
	}
	for i := 1; i <= nodes; i++ {
		if want := fmt.Sprintf("node%d: %d/%d sessions Established", i, sessions, sessions); !strings.Contains(status, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if got := strings.Count(status, " 0%"); got != pods*(pods-1) {
		t.Errorf("ping matrix: %d cells with 0%% loss, want %d", got, pods*(pods-1))
	}
	for _, check := range checks {
		check(t, name)
	}
	labDownClean(t, name)
}

// labUpHealthy brings deploy/lab/NAME.clab.yml up (downed on cleanup if
// anything is left) and waits until its status is healthy; it returns
// up's output and that status.
func labUpHealthy(t *testing.T, name string) (up, status string) {
	t.Helper()
	harness.RequireRoot(t)
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("needs etcd (Debian etcd-server)")
	}
	if left := labLeftovers(t, name); len(left) > 0 {
		t.Skipf("a lab %s is already up (%v); not touching it", name, left)
	}
	t.Cleanup(func() {
		if left := labLeftovers(t, name); len(left) > 0 {
			out, _ := labCLI(t, "down", name)
			t.Logf("cleanup: down after failure:\n%s", out)
		}
	})

	up, err := labCLI(t, "up", "deploy/lab/"+name+".clab.yml")
	if err != nil {
		logs, _ := exec.Command("sh", "-c", "tail -n 30 /var/run/petrel-lab/"+name+"/logs/*.log").CombinedOutput()
		t.Fatalf("lab up: %v\n%s\nlogs:\n%s", err, up, logs)
	}
	t.Logf("lab up:\n%s", up)
	for _, want := range []string{"starting etcd", "starting petrel daemon on node3"} {
		if !strings.Contains(up, want) {
			t.Errorf("up output lacks %q", want)
		}
	}

	// The daemons outlived `up`; status sees them through their sockets.
	harness.Eventually(t, 30*time.Second, time.Second, func() error {
		status, err = labCLI(t, "status", name)
		return err
	}, "lab status healthy")
	t.Logf("lab status:\n%s", status)
	if !strings.Contains(status, "Healthy") {
		t.Errorf("status not healthy")
	}
	return up, status
}

// labDownClean checks that a second up is refused, then that down leaves
// nothing of lab name.
func labDownClean(t *testing.T, name string) {
	t.Helper()
	if out, err := labCLI(t, "up", "deploy/lab/"+name+".clab.yml"); err == nil || !strings.Contains(out, "already exists") {
		t.Errorf("second up: %v\n%s", err, out)
	}
	out, err := labCLI(t, "down", "deploy/lab/"+name+".clab.yml")
	if err != nil {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	if left := labLeftovers(t, name); len(left) > 0 {
		t.Fatalf("left after down: %v", left)
	}
}

// TestLabDownAfterCrashedUp: what a killed `up` leaves — namespaces with the
// marker, a veth between them, a state dir with a pid file, a marked
// process and an unmarked one inside a namespace — is all removed by down.
func TestLabDownAfterCrashedUp(t *testing.T) {
	harness.RequireRoot(t)
	const name = "crashtest"
	if left := labLeftovers(t, name); len(left) > 0 {
		t.Fatalf("leftovers before the test: %v", left)
	}
	t.Cleanup(func() { labCLI(t, "down", name) })
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	a, b := "plab-"+name+"-node1", "plab-"+name+"-sw"
	run("ip", "netns", "add", a)
	run("ip", "netns", "add", b)
	run("ip", "-n", a, "link", "add", "eth1", "type", "veth", "peer", "name", "p-node1", "netns", b)
	dir := filepath.Join("/var/run/petrel-lab", name)
	if err := os.MkdirAll(filepath.Join(dir, "pids"), 0o755); err != nil {
		t.Fatal(err)
	}

	// A marked, detached process (like a daemon `up` started) and an
	// unmarked one running inside a lab namespace.
	var pids []int
	for i, env := range [][]string{{"PETREL_LAB=" + name}, nil} {
		cmd := exec.Command("ip", "netns", "exec", []string{a, b}[i], "sleep", "600")
		cmd.Env = append(os.Environ(), env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait() // reap it once down kills it
		pids = append(pids, cmd.Process.Pid)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids", "node1-petrel.pid"), []byte(strconv.Itoa(pids[0])+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"name": "crashtest", "nodes": [`), 0o644); err != nil { // cut off mid-write
		t.Fatal(err)
	}

	out, err := labCLI(t, "down", name)
	if err != nil {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	t.Logf("lab down:\n%s", out)
	if left := labLeftovers(t, name); len(left) > 0 {
		t.Fatalf("left after down: %v", left)
	}
	harness.Eventually(t, 5*time.Second, 100*time.Millisecond, func() error {
		for _, pid := range pids {
			if err := syscall.Kill(pid, 0); err == nil {
				stat, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
				if !strings.Contains(string(stat), ") Z ") {
					return fmt.Errorf("pid %d still runs", pid)
				}
			}
		}
		return nil
	}, "stray processes gone")
	if out, _ := labCLI(t, "down", name); !strings.Contains(out, "gone") {
		t.Errorf("second down: %s", out)
	}
}

// TestLabBadTopology: topology errors are reported by `up` before anything
// is created — the message names the problem and no namespace, directory or
// process of the lab exists afterwards.
func TestLabBadTopology(t *testing.T) {
	harness.RequireRoot(t)
	const name = "badlab"
	if left := labLeftovers(t, name); len(left) > 0 {
		t.Fatalf("leftovers before the test: %v", left)
	}
	t.Cleanup(func() {
		if left := labLeftovers(t, name); len(left) > 0 {
			labCLI(t, "down", name)
		}
	})
	dir := t.TempDir()
	head := "name: " + name + "\ntopology:\n  nodes:\n    sw: {kind: bridge}\n    etcd: {labels: {petrel: etcd}, exec: [\"ip addr add 10.9.0.100/24 dev eth1\"]}\n    node1: {labels: {petrel: node, pods: \"1\"}, exec: [\"ip addr add 10.9.0.1/24 dev eth1\"]}\n"
	links := "  links:\n    - endpoints: [\"etcd:eth1\", \"sw:p-etcd\"]\n    - endpoints: [\"node1:eth1\", \"sw:p-node1\"]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown-node", head + links + "    - endpoints: [\"node9:eth1\", \"sw:p-node9\"]\n", `endpoint node9:eth1: unknown node "node9"`},
		{"duplicate-node", head + "    node1: {labels: {petrel: node}}\n" + links, `mapping key "node1" already defined at line 6 (a duplicate name)`},
		{"bad-endpoint", head + links + "    - endpoints: [\"node1-eth2\", \"sw:p-x\"]\n", `endpoint "node1-eth2": want node:interface`},
		{"two-etcd", head + "    etcd2: {labels: {petrel: etcd}}\n" + links, "want exactly one node labelled petrel: etcd, have 2 [etcd etcd2]"},
		{"missing-file", "", "no such file"},
	} {
		f := filepath.Join(dir, tc.name+".clab.yml")
		if tc.yaml != "" {
			if err := os.WriteFile(f, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, err := labCLI(t, "up", f)
		if err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, f) {
			t.Errorf("%s: up: err %v, output lacks %q or the file name:\n%s", tc.name, err, tc.want, out)
		}
		if left := labLeftovers(t, name); len(left) > 0 {
			t.Errorf("%s: left after a refused up: %v", tc.name, left)
		}
		nss, _ := exec.Command("ip", "netns", "list").CombinedOutput()
		if strings.Contains(string(nss), "plab-"+name) {
			t.Errorf("%s: namespaces: %s", tc.name, nss)
		}
	}
}

// labPing is `ping -i 0.01 TO` running inside a pod namespace.
type labPing struct {
	from, to string
	start    time.Time
	cmd      *exec.Cmd
	out      bytes.Buffer
}

// mesh3Lab brings up deploy/lab/mesh3.clab.yml (downed on cleanup) and
// returns its state: etcd's URL and each pod's netns and address by name
// ("node1-pod1"). It skips without etcd or when the lab is already up.
func mesh3Lab(t *testing.T) (etcdURL string, pods map[string][2]string) {
	t.Helper()
	harness.RequireRoot(t)
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("needs etcd (Debian etcd-server)")
	}
	const name = "mesh3"
	if left := labLeftovers(t, name); len(left) > 0 {
		t.Skipf("a lab %s is already up (%v); not touching it", name, left)
	}
	t.Cleanup(func() {
		if left := labLeftovers(t, name); len(left) > 0 {
			out, _ := labCLI(t, "down", name)
			t.Logf("cleanup: down:\n%s", out)
		}
	})
	start := time.Now()
	if out, err := labCLI(t, "up", "deploy/lab/"+name+".clab.yml"); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	t.Logf("up took %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { // before the down above: the logs go with the lab
		if !t.Failed() {
			return
		}
		for _, node := range []string{"node1", "node2", "node3"} {
			log, _ := os.ReadFile("/var/run/petrel-lab/" + name + "/logs/" + node + "-petrel.log")
			t.Logf("==== %s's petrel log, last lines ====\n%s", node, tailLines(grepLines(string(log), "level=INFO")+"\n"+grepLines(string(log), "level=WARN"), 40))
		}
	})
	raw, err := os.ReadFile("/var/run/petrel-lab/" + name + "/state.json")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		EtcdURL string
		Pods    []struct{ Name, Netns, Address string }
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	pods = map[string][2]string{} // default/node1-pod1 -> netns, address
	for _, p := range st.Pods {
		pods[strings.TrimPrefix(p.Name, "default/")] = [2]string{p.Netns, p.Address}
	}
	return st.EtcdURL, pods
}

// startLabPings pings, at ~200/s each, across nodes both ways, within a
// node, and between the other pods; checkLabPings then stops them and
// fails on any echo lost. pods are by "node1-pod1", ..., "node3-pod2",
// each its namespace (a name, or a path) and address.
func startLabPings(t *testing.T, pods map[string][2]string) []*labPing {
	t.Helper()
	var pings []*labPing
	for _, pair := range [][2]string{
		{"node1-pod1", "node3-pod1"}, {"node3-pod1", "node1-pod1"}, // across nodes, both ways
		{"node2-pod1", "node2-pod2"}, // same node
		{"node1-pod2", "node2-pod2"}, {"node3-pod2", "node2-pod1"},
	} {
		from, to := pods[pair[0]], pods[pair[1]]
		if from[0] == "" || to[1] == "" {
			t.Fatalf("pods %v not in the lab's state: %v", pair, pods)
		}
		p := &labPing{from: pair[0], to: pair[1], start: time.Now()}
		// -i 0.005 asks for 200/s: iputils' ping sends only ~63/s at 0.01
		// here (16 ms apart) and ~111/s at 0.009, and falls under 100/s
		// at that when the machine is busy.
		p.cmd = exec.Command("ip", "netns", "exec", from[0], "ping", "-i", "0.005", "-W", "1", to[1])
		if strings.HasPrefix(from[0], "/") { // a Kubernetes pod's: /proc/PID/ns/net
			p.cmd = exec.Command("nsenter", "--net="+from[0], "ping", "-i", "0.005", "-W", "1", to[1])
		}
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.cmd.Process.Kill() })
		pings = append(pings, p)
	}
	return pings
}

func checkLabPings(t *testing.T, pings []*labPing) {
	t.Helper()
	for _, p := range pings {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
	}
	end := time.Now()
	for _, p := range pings {
		_ = p.cmd.Wait()
		elapsed := end.Sub(p.start)
		sent, recv, lost := pingLoss(p.out.String())
		t.Logf("%s -> %s: %d sent in %v (%.0f/s), %d received, lost before the last answer: %v", p.from, p.to, sent, elapsed.Round(time.Second), float64(sent)/elapsed.Seconds(), recv, lost)
		// ~200/s asked; a 2-core machine busy with other tests delivers
		// 190 or so.
		if float64(sent) < 100*elapsed.Seconds() {
			t.Errorf("%s -> %s: only %d echoes in %v, want 100/s or more", p.from, p.to, sent, elapsed)
		}
		// sent-recv counts the echoes lost after the last answer too (a
		// stream that dies for good); one may be in flight at SIGINT.
		if float64(recv) < 100*elapsed.Seconds() || len(lost) > 0 || sent-recv > 1 {
			t.Errorf("%s -> %s: %d received, %d lost (icmp_seq %v)\n%s", p.from, p.to, recv, len(lost), lost, tailLines(p.out.String(), 5))
		}
	}
}

// TestLabRestarts: on mesh3, pods ping each other at >100 packets/s
// while petrel daemons are restarted every way an operator or a crash
// can: each in turn with SIGTERM, then with SIGKILL (`petrel lab restart
// NODE [--kill]`); then for a minute a random node's daemon is killed with
// a random signal every few seconds without waiting for its sessions; then
// every daemon at once, killed and then terminated. Graceful restart keeps
// the routes in the kernel throughout, so not a single echo may be lost.
func TestLabRestarts(t *testing.T) {
	const name = "mesh3"
	_, pods := mesh3Lab(t)
	pings := startLabPings(t, pods)
	time.Sleep(2 * time.Second)

	// restart returns how long after the new daemons started every session
	// was Established (0 with --no-wait).
	restart := func(args ...string) time.Duration {
		t.Helper()
		out, err := labCLI(t, append([]string{"restart", "--lab", name}, args...)...)
		if err != nil {
			t.Fatalf("lab restart %v: %v\n%s", args, err, out)
		}
		m := regexp.MustCompile(`every session Established (\S+) after`).FindStringSubmatch(out)
		if m == nil {
			return 0
		}
		d, _ := time.ParseDuration(m[1])
		return d
	}
	nodes := []string{"node1", "node2", "node3"}
	for _, kill := range []bool{false, true} {
		for _, node := range nodes {
			args := []string{node}
			if kill {
				args = append(args, "--kill")
			}
			// The peers re-create a gracefully dropped peer at once instead of
			// refusing it through GoBGP's 5 s idle hold; what is left is
			// GoBGP's first-dial delay (1.5-2 s), or one connect retry more
			// (3.75-5 s) when a dial comes before the new daemon listens.
			// Measured and logged, not asserted: under the whole suite it
			// ran 1.5-5.7 s (issue #12 stays open on it).
			took := restart(args...)
			t.Logf("lab restart %v: sessions Established %v after the daemon started", args, took)
			time.Sleep(2 * time.Second)
		}
	}

	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	chaosEnd := time.Now().Add(60 * time.Second)
	var chaos []string
	for time.Now().Before(chaosEnd) {
		args := []string{nodes[rnd.IntN(len(nodes))], "--no-wait"}
		if rnd.IntN(2) == 0 {
			args = append(args, "--kill")
		}
		restart(args...)
		chaos = append(chaos, strings.Join(args, " "))
		time.Sleep(time.Duration(2000+rnd.IntN(3000)) * time.Millisecond)
	}
	t.Logf("chaos: %d restarts in 60s: %s", len(chaos), strings.Join(chaos, "; "))
	t.Logf("every node at once, SIGKILL: Established %v after the start", restart("--all", "--kill"))
	time.Sleep(2 * time.Second)
	t.Logf("every node at once, SIGTERM: Established %v after the start", restart("--all"))
	time.Sleep(2 * time.Second)

	checkLabPings(t, pings)
	if status, err := labCLI(t, "status", name); err != nil || !strings.Contains(status, "Healthy") {
		t.Errorf("status after the restarts: %v\n%s", err, status)
	}
	if out, err := labCLI(t, "down", name); err != nil {
		t.Errorf("lab down: %v\n%s", err, out)
	}
}

// TestLabRestartAllAtOnceWithLLGRAndBFD: mesh3 with the node-to-node mesh
// on long-lived graceful restart and BFD (petrel's BGPConfiguration
// nodeMeshRestartMode, nodeMeshFailureDetectionMode); every petrel daemon
// is killed at the same moment and started again. The kernel keeps the
// routes, no BFD timeout of a session already closed resets the new
// sessions, and not one echo is lost.
func TestLabRestartAllAtOnceWithLLGRAndBFD(t *testing.T) {
	etcdURL, pods := mesh3Lab(t)
	const name = "mesh3"
	cfg := filepath.Join(t.TempDir(), "bgpconfig.yaml")
	// BFD at 500 ms x 6 (3 s): at the default 200 ms x 3, three daemons
	// starting at once beside a thousand echoes a second on this 2-core VM
	// missed BFD's 600 ms now and then (1 run in 3), and the false "down"
	// reset a fresh session the hard way; 300 ms x 5 still did once in the
	// full suite, with other test packages running beside this one (a
	// node took 12 s to start). This test is about LLGR and BFD surviving
	// the restart, not about BFD's speed.
	if err := os.WriteFile(cfg, []byte("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\n"+
		"spec: {nodeMeshRestartMode: LongLivedGracefulRestart, nodeMeshMaxRestartTime: 120s, nodeMeshFailureDetectionMode: BFDIfDirectlyConnected}\n"+
		"---\napiVersion: projectcalico.org/v3\nkind: BFDConfiguration\nmetadata: {name: default}\n"+
		"spec: {interfaces: [{matchPattern: \"*\", minimumRecvInterval: 500ms, minimumSendInterval: 500ms, multiplier: 6}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	apply := exec.Command("ip", "netns", "exec", "plab-"+name+"-etcd", "env", "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+etcdURL, petrelBin, "apply", "-f", cfg)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	// The mesh sessions restart with the new options; wait for BFD on all.
	sock := func(node string) string { return "/var/run/petrel-lab/" + name + "/" + node + ".sock" }
	for _, node := range []string{"node1", "node2", "node3"} {
		harness.Eventually(t, 30*time.Second, 200*time.Millisecond, func() error {
			out, err := exec.Command(petrelBin, "status", "-o", "json", "--socket", sock(node)).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			if n := strings.Count(string(out), `"state": "Up"`); n != 2 || !strings.Contains(string(out), `"llgrStaleTime": "2m0s"`) {
				return fmt.Errorf("%d BFD sessions Up, want 2, with LLGR:\n%s", n, out)
			}
			return nil
		}, "%s: both mesh peers with BFD Up and LLGR", node)
	}
	pings := startLabPings(t, pods)
	time.Sleep(2 * time.Second)

	if out, err := labCLI(t, "restart", "--lab", name, "--all", "--kill"); err != nil {
		t.Errorf("restart --all --kill: %v\n%s", err, out)
	}
	time.Sleep(3 * time.Second) // BFD back up, and any stray reset would show
	checkLabPings(t, pings)
	if status, err := labCLI(t, "status", name); err != nil || !strings.Contains(status, "Healthy") {
		t.Errorf("status after the restart: %v\n%s", err, status)
	}
}

var icmpSeqRE = regexp.MustCompile(`bytes from .* icmp_seq=(\d+) `)

// pingLoss reads ping's output: the summary's transmitted and received
// counts, and the sequence numbers without a reply up to the last one
// answered (the echo in flight when SIGINT arrives is not a loss).
func pingLoss(out string) (sent, recv int, lost []int) {
	if m := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`).FindStringSubmatch(out); m != nil {
		sent, _ = strconv.Atoi(m[1])
		recv, _ = strconv.Atoi(m[2])
	}
	seen := map[int]bool{}
	last := 0
	for _, m := range icmpSeqRE.FindAllStringSubmatch(out, -1) {
		seq, _ := strconv.Atoi(m[1])
		seen[seq] = true
		last = max(last, seq)
	}
	for seq := 1; seq <= last; seq++ {
		if !seen[seq] {
			lost = append(lost, seq)
		}
	}
	return sent, recv, lost
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
