package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// labRoundTrip brings deploy/lab/NAME.clab.yml up, checks that status shows
// every petrel node with sessions Established sessions and a ping matrix
// of pods pods without loss, and that down leaves nothing.
func labRoundTrip(t *testing.T, name string, nodes, pods, sessions int) {
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

	out, err := labCLI(t, "up", "deploy/lab/"+name+".clab.yml")
	if err != nil {
		logs, _ := exec.Command("sh", "-c", "tail -n 30 /var/run/petrel-lab/"+name+"/logs/*.log").CombinedOutput()
		t.Fatalf("lab up: %v\n%s\nlogs:\n%s", err, out, logs)
	}
	t.Logf("lab up:\n%s", out)
	for _, want := range []string{"starting etcd", "starting petrel daemon on node3", fmt.Sprintf("%d petrel nodes, %d pods", nodes, pods)} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q", want)
		}
	}

	// The daemons outlived `up`; status sees them through their sockets.
	var status string
	harness.Eventually(t, 30*time.Second, time.Second, func() error {
		status, err = labCLI(t, "status", name)
		return err
	}, "lab status healthy")
	t.Logf("lab status:\n%s", status)
	for i := 1; i <= nodes; i++ {
		if want := fmt.Sprintf("node%d: %d/%d sessions Established", i, sessions, sessions); !strings.Contains(status, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	if got := strings.Count(status, " 0%"); got != pods*(pods-1) {
		t.Errorf("ping matrix: %d cells with 0%% loss, want %d", got, pods*(pods-1))
	}
	if !strings.Contains(status, "Healthy") {
		t.Errorf("status not healthy")
	}
	if out, err := labCLI(t, "up", "deploy/lab/"+name+".clab.yml"); err == nil || !strings.Contains(out, "already exists") {
		t.Errorf("second up: %v\n%s", err, out)
	}

	out, err = labCLI(t, "down", "deploy/lab/"+name+".clab.yml")
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
