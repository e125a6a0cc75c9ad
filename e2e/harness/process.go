package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a long-running process started inside a Node.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string // stdout and stderr, appended across restarts

	node    *Node
	done    chan struct{} // closed once Cmd.Wait has returned
	waitErr error         // Cmd.Wait's result, valid after done
}

// Start starts args inside the node's namespace as a long-running process
// called name, with stdout and stderr appended to <Dir>/<node>-<name>.log.
// The Lab stops it on cleanup.
//
// The process gets its own process group so that it and anything it forks
// can be signalled together, and SIGKILL as parent-death signal so that it
// does not outlive a test binary that is killed outright. (Daemons that drop
// privileges, like FRR's, lose the parent-death signal; the next run's
// stale-namespace sweep catches those.)
func (n *Node) Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("harness: Start %s on %s: no command", name, n.Name)
	}
	logPath := filepath.Join(n.lab.dir, n.Name+"-"+name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	defer logFile.Close() // the child has its own copy once started

	cmd := exec.Command("ip", n.execArgs(args)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: start %s on %s: %v", name, n.Name, err)
	}

	p := &Process{Name: name, Cmd: cmd, LogPath: logPath, node: n, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	n.lab.track(p)
	return p
}

// Signal sends sig to the process (not its group), e.g. SIGHUP to reload.
func (p *Process) Signal(sig os.Signal) error {
	return p.Cmd.Process.Signal(sig)
}

// Freeze stops the process group with SIGSTOP: a hung daemon whose
// sockets stay open, so peers notice only through timers (BGP hold time,
// BFD). The returned thaw (SIGCONT) is safe to call more than once; call
// it before cleanup, which would otherwise wait for SIGTERM in vain.
func (p *Process) Freeze() (thaw func()) {
	p.signalGroup(syscall.SIGSTOP)
	var once sync.Once
	return func() { once.Do(func() { p.signalGroup(syscall.SIGCONT) }) }
}

// Kill SIGKILLs the process group and waits for the process to exit. It is
// safe to call more than once and on a process that already exited.
func (p *Process) Kill() {
	p.signalGroup(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM to the process group and waits up to timeout for the
// process to exit, then kills it. The error reports that it had to be
// killed; how the process exited is not an error here.
func (p *Process) Stop(timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	p.signalGroup(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%s on %s did not exit within %v of SIGTERM; killed", p.Name, p.node.Name, timeout)
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns the contents of the process's log file.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(log unavailable: %v)", err)
	}
	return string(b)
}

// signalGroup signals the whole process group, whose id is the leader's pid.
// It does nothing once the leader has been reaped, as its pid may then be
// reused; stragglers in the namespace are killed when the Lab deletes it.
func (p *Process) signalGroup(sig syscall.Signal) {
	if !p.Exited() {
		_ = syscall.Kill(-p.Cmd.Process.Pid, sig)
	}
}

// exitStatus describes how an exited process ended.
func (p *Process) exitStatus() string {
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error()
}

// waitReady polls probe until it succeeds, failing the test with the
// daemon's log as soon as one of procs exits (a bad config, a port in use)
// instead of waiting out the timeout.
func waitReady(t testing.TB, timeout time.Duration, probe func() error, procs ...*Process) {
	t.Helper()
	Eventually(t, timeout, 100*time.Millisecond, func() error {
		for _, p := range procs {
			if p.Exited() {
				t.Fatalf("harness: %s on %s exited during startup (%s); log:\n%s",
					p.Name, p.node.Name, p.exitStatus(), tail(p.Log(), logTailLines))
			}
		}
		return probe()
	}, "%s on %s ready", procs[0].Name, procs[0].node.Name)
}
