// Package harness builds throw-away network topologies for petrel's
// end-to-end tests.
//
// A Lab owns a set of Linux network namespaces ("nodes") joined by veth
// links, and every long-running process started inside them. Everything is
// created inside namespaces the Lab made itself — never in the host's root
// namespace — and everything is torn down by t.Cleanup, also when the test
// fails or panics. Namespaces are named "pe2e-<pid>-<seq>-<node>": the pid
// keeps parallel test binaries apart and lets a later run recognise and sweep
// the leftovers of a binary that died before its cleanup could run.
//
// The tests need root (to create namespaces); RequireRoot and New skip
// otherwise.
package harness

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/petrel-net/petrel/internal/cmdutil"
	"github.com/petrel-net/petrel/internal/netnsbuild"
)

const (
	// namePrefix starts every namespace and runtime directory the harness
	// creates, so that leftovers are recognisable (and sweepable).
	namePrefix = "pe2e-"

	// stopGrace is how long cleanup waits after SIGTERM before SIGKILL.
	// Long enough for BIRD/FRR/gobgpd to exit cleanly (which keeps their
	// logs complete), short enough not to slow down a failing suite.
	stopGrace = 2 * time.Second

	// logTailLines is how much of each process log is shown on failure.
	logTailLines = 60
)

// labSeq numbers the Labs of one test binary so that parallel tests never
// pick the same namespace names.
var labSeq atomic.Int64

// nodeNameRE restricts node names to what is safe in a namespace name and a
// file name.
var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// RequireRoot skips the test unless it runs as root with `ip` available,
// which is what creating network namespaces needs.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root and `ip netns` (run as root, e.g. sudo make e2e)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("e2e: needs root and `ip netns` (run as root, e.g. sudo make e2e)")
	}
}

// Lab owns the namespaces, processes and runtime directories of one test.
type Lab struct {
	t      testing.TB
	prefix string // "pe2e-<pid>-<seq>-"
	dir    string

	mu      sync.Mutex
	nodes   []*Node
	procs   []*Process
	runDirs []string
}

// New returns an empty Lab for t, skipping t unless running as root.
//
// It first sweeps namespaces left behind by earlier test binaries that died
// without running their cleanup (killed by a timeout or ^C), then registers
// a cleanup that, in order: logs the tail of every process log if t failed,
// stops every process started through the Lab (SIGTERM to its process group,
// SIGKILL after a short grace), kills whatever else still runs inside the
// Lab's namespaces, deletes the namespaces (which also destroys their veth
// links) and removes the daemons' runtime directories.
func New(t testing.TB) *Lab {
	t.Helper()
	RequireRoot(t)
	sweepStale(t)
	l := &Lab{
		t:      t,
		prefix: fmt.Sprintf("%s%d-%d-", namePrefix, os.Getpid(), labSeq.Add(1)),
		// Requested before registering our cleanup: cleanups run last-in
		// first-out, so the logs in it are still there when we dump them.
		dir: t.TempDir(),
	}
	t.Cleanup(l.cleanup)
	return l
}

// Dir is a per-test temporary directory for configs and process logs.
func (l *Lab) Dir() string { return l.dir }

// Node creates a namespace for a node called name (unique within the Lab),
// brings its loopback up and enables IPv4 forwarding in it, as a router
// needs.
func (l *Lab) Node(name string) *Node {
	l.t.Helper()
	if !nodeNameRE.MatchString(name) {
		l.t.Fatalf("harness: invalid node name %q (want letters, digits, '-', '_', '.')", name)
	}
	n := &Node{Name: name, NS: l.prefix + name, lab: l}

	l.mu.Lock()
	dup := slices.ContainsFunc(l.nodes, func(o *Node) bool { return o.Name == name })
	l.mu.Unlock()
	if dup {
		l.t.Fatalf("harness: node %q already exists", name)
	}

	must(l.t, netnsbuild.Create(n.NS))
	// Track it only once it exists, but before configuring it, so a failure
	// below still gets the namespace deleted.
	l.mu.Lock()
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()

	must(l.t, netnsbuild.Sysctl(n.NS, "net/ipv4/ip_forward", "1"))
	return n
}

// Link joins a and b with a veth pair named aIf (in a) and bIf (in b),
// assigns the given addresses (CIDR such as "10.0.0.1/24" or
// "fd00::1/64"; empty means none) and brings both ends up.
//
// The pair is created directly across the two namespaces, so no interface
// ever exists in the host's root namespace.
func (l *Lab) Link(a *Node, aIf, aCIDR string, b *Node, bIf, bCIDR string) {
	l.t.Helper()
	must(l.t, netnsbuild.Veth(a.NS, aIf, b.NS, bIf))
	a.configureLink(l.t, aIf, aCIDR)
	b.configureLink(l.t, bIf, bCIDR)
}

// runtimeDir creates a directory for a daemon's sockets, pid files and
// config, removed by the Lab's cleanup after all processes are gone.
//
// It lives directly under os.TempDir() rather than in Dir() because unix
// socket paths are limited to 108 bytes (t.TempDir() paths embed the test
// name) and because FRR drops privileges to user frr, which cannot traverse
// t.TempDir()'s 0700 parents. Its name starts with the Lab's prefix so a
// crashed run's leftovers are swept like its namespaces.
func (l *Lab) runtimeDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", l.prefix+name+"-")
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	l.mu.Lock()
	l.runDirs = append(l.runDirs, dir)
	l.mu.Unlock()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return dir
}

func (l *Lab) track(p *Process) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.procs = append(l.procs, p)
}

func (l *Lab) cleanup() {
	l.mu.Lock()
	procs := append([]*Process(nil), l.procs...)
	nodes := append([]*Node(nil), l.nodes...)
	dirs := append([]string(nil), l.runDirs...)
	l.mu.Unlock()

	if l.t.Failed() {
		dumpLogs(l.t, procs)
	}

	// Stop everything concurrently: the grace period then costs at most
	// stopGrace in total instead of per process.
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { _ = p.Stop(stopGrace) })
	}
	wg.Wait()

	for i := len(nodes) - 1; i >= 0; i-- {
		if err := netnsbuild.Delete(nodes[i].NS); err != nil {
			l.t.Errorf("harness: cleanup: %v", err)
		}
	}
	for _, dir := range dirs {
		if err := os.RemoveAll(dir); err != nil {
			l.t.Errorf("harness: cleanup: %v", err)
		}
	}
}

// dumpLogs logs the tail of each distinct process log (a restarted process
// appends to the same file, so it is shown once).
func dumpLogs(t testing.TB, procs []*Process) {
	seen := map[string]bool{}
	for _, p := range procs {
		if seen[p.LogPath] {
			continue
		}
		seen[p.LogPath] = true
		state := "running"
		if p.Exited() {
			state = "exited: " + p.exitStatus()
		}
		t.Logf("==== %s on %s (%s), last %d lines of %s ====\n%s",
			p.Name, p.node.Name, state, logTailLines, p.LogPath, tail(p.Log(), logTailLines))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// sweepStale deletes namespaces and runtime directories named
// "pe2e-<pid>-..." whose pid is no longer alive: the remains of a test
// binary that was killed before its cleanup ran. Those of live binaries
// (possibly running in parallel with us) are left alone.
func sweepStale(t testing.TB) {
	t.Helper()
	names, err := netnsbuild.List()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	for _, ns := range names {
		if !isStale(ns) {
			continue
		}
		if err := netnsbuild.Delete(ns); err != nil {
			t.Logf("harness: sweeping stale namespace: %v", err) // maybe a parallel sweeper won
			continue
		}
		t.Logf("harness: swept stale namespace %s", ns)
	}

	entries, _ := os.ReadDir(os.TempDir())
	for _, e := range entries {
		if e.IsDir() && isStale(e.Name()) {
			_ = os.RemoveAll(filepath.Join(os.TempDir(), e.Name()))
		}
	}
}

// isStale reports whether name is "pe2e-<pid>-..." for a pid that is not
// alive.
func isStale(name string) bool {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return false
	}
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	// Signal 0 checks existence; EPERM means it exists but is not ours.
	err = syscall.Kill(pid, 0)
	return errors.Is(err, syscall.ESRCH)
}

// Node is one network namespace of a Lab.
type Node struct {
	Name string // as given to Lab.Node
	NS   string // namespace name, "pe2e-<pid>-<seq>-<Name>"
	lab  *Lab
}

// Run runs args inside the node's namespace and returns the combined
// output. A non-nil error includes the command and its output.
func (n *Node) Run(args ...string) (string, error) {
	return run("ip", n.execArgs(args)...)
}

// MustRun is Run that fails the test on error.
func (n *Node) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		t.Fatalf("harness: on %s: %v", n.Name, err)
	}
	return out
}

// execArgs returns the `ip` arguments that run args inside the namespace.
// `ip netns exec` execs args directly, so the started process is args[0]
// itself, not a wrapper.
func (n *Node) execArgs(args []string) []string {
	return append([]string{"netns", "exec", n.NS}, args...)
}

func (n *Node) configureLink(t testing.TB, ifName, cidr string) {
	t.Helper()
	if cidr != "" {
		pfx, err := netip.ParsePrefix(cidr)
		if err != nil {
			t.Fatalf("harness: link %s on %s: %v", ifName, n.Name, err)
		}
		must(t, netnsbuild.AddAddr(n.NS, ifName, pfx)) // IPv6 without DAD: usable at once
	}
	must(t, netnsbuild.Up(n.NS, ifName))
}

// Eventually calls fn every interval until it returns nil, and fails the
// test if it has not after timeout. The failure shows msgAndArgs (a format
// string and its arguments) and fn's last error.
func Eventually(t testing.TB, timeout, interval time.Duration, fn func() error, msgAndArgs ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not met after %v: %v", formatMsg(msgAndArgs), timeout, err)
		}
		time.Sleep(interval)
	}
}

func formatMsg(msgAndArgs []any) string {
	if len(msgAndArgs) == 0 {
		return "condition"
	}
	if format, ok := msgAndArgs[0].(string); ok {
		return fmt.Sprintf(format, msgAndArgs[1:]...)
	}
	return fmt.Sprint(msgAndArgs...)
}

// run is cmdutil.Run: combined output, an error naming the command.
func run(name string, args ...string) (string, error) { return cmdutil.Run(name, args...) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
}
