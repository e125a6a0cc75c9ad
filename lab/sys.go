package lab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/petrel-net/petrel/internal/cmdutil"
)

// run is cmdutil.Run: combined output, an error naming the command.
func run(name string, args ...string) (string, error) { return cmdutil.Run(name, args...) }

// inNS runs the program args inside namespace ns. It goes through `ip netns
// exec` (namespaces, links and addresses are built with netlink instead)
// because starting a program in a namespace is that tool's job: it also
// mounts the namespace's own /sys and /etc/netns/NS files for the program,
// which a Go fork from a thread moved into the namespace would not.
func inNS(ns string, args ...string) (string, error) {
	if strings.HasPrefix(ns, "/") { // a pod's in a Kubernetes lab: /proc/PID/ns/net
		return run("nsenter", append([]string{"--net=" + ns}, args...)...)
	}
	return run("ip", netnsExec(ns, args)...)
}

// netnsExec is the `ip` command line that runs args inside ns.
func netnsExec(ns string, args []string) []string {
	return append([]string{"netns", "exec", ns}, args...)
}

// envMarker is set in the environment of every process the lab starts.
const envMarker = "PETREL_LAB"

// proc is a detached process started by `up`.
type proc struct {
	name string
	pid  int
	log  string
	done chan struct{}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// start runs args inside ns as a detached process (own session, stdin
// /dev/null, output appended to logPath), marked with PETREL_LAB=lab, and
// records its pid in pidPath. It outlives the command that started it.
func start(lab, ns, logPath, pidPath string, env []string, args ...string) (*proc, error) {
	p, err := startCmd(lab, logPath, pidPath, env, append([]string{"ip"}, netnsExec(ns, args)...)) // see inNS
	if p != nil {
		p.name = filepath.Base(args[0])
	}
	return p, err
}

// startCmd is start for a command line that enters its namespaces itself.
func startCmd(lab, logPath, pidPath string, env []string, args []string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(append(os.Environ(), envMarker+"="+lab), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	p := &proc{name: filepath.Base(args[0]), pid: cmd.Process.Pid, log: logPath, done: make(chan struct{})}
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(p.pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// markedPids returns the pids of live processes whose environment holds
// PETREL_LAB=lab (every lab name when lab is empty).
func markedPids(lab string) map[int]string {
	pids := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			v, ok := bytes.CutPrefix(kv, []byte(envMarker+"="))
			if ok && (lab == "" || string(v) == lab) {
				pids[pid] = string(v)
			}
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// killAll sends SIGTERM to pids, waits up to grace, then SIGKILLs the rest.
func killAll(pids []int, grace time.Duration) {
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		left := false
		for _, pid := range pids {
			if alive(pid) {
				left = true
			}
		}
		if !left {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range pids {
		if alive(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// poll calls fn every interval until it returns nil or timeout passes.
func poll(timeout, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// pidFile reads <dir>/pids/<name>.pid.
func pidFile(lab, name string) (int, bool) {
	data, err := os.ReadFile(filepath.Join(Dir(lab), "pids", name+".pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid, err == nil
}
