package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// RestartOptions says how Restart stops and starts petrel daemons.
type RestartOptions struct {
	Kill   bool // SIGKILL instead of SIGTERM: no graceful shutdown
	NoWait bool // return once the daemons answer, without waiting for sessions
}

// Restart stops the petrel daemons of the named nodes of lab name (all
// of them at once: every signal is sent before any daemon starts again;
// an empty list means every petrel node) and starts them again as up
// did: same environment, same socket, output appended to the same log,
// detached. It returns once the new daemons answer on their sockets and,
// unless opts.NoWait, every petrel node of the lab has all its sessions
// Established again.
func Restart(ctx context.Context, name string, nodes []string, opts RestartOptions, out io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("petrel lab needs root (network namespaces)")
	}
	if out == nil {
		out = io.Discard
	}
	b, err := reopen(name, out)
	if err != nil {
		return err
	}
	targets, err := b.petrelNodes(nodes)
	if err != nil {
		return err
	}
	if err := b.stopPetrels(targets, opts.Kill); err != nil {
		return err
	}
	for _, n := range targets {
		if err := b.startPetrel(n); err != nil {
			return err
		}
	}
	started := time.Now()
	if !opts.NoWait {
		if err := b.waitSessions(ctx); err != nil {
			return err
		}
		b.step("every session Established %v after the daemons started", time.Since(started).Round(time.Millisecond))
	}
	for _, n := range targets {
		b.step("%s: petrel restarted", n.Name)
	}
	return nil
}

// reopen returns a builder for the lab that up built, from its state and
// its copy of the topology.
func reopen(name string, out io.Writer) (*builder, error) {
	st, err := Load(name)
	if err != nil {
		return nil, err
	}
	topo, err := LoadTopology(filepath.Join(Dir(name), "topology.clab.yml"))
	if err != nil {
		return nil, err
	}
	b := &builder{opts: Options{Petrel: st.Petrel, Out: out}, topo: topo, dir: Dir(name), state: *st}
	if b.opts.Petrel == "" {
		if b.opts.Petrel, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// stopPetrels signals the petrel daemons of targets that run (SIGTERM, or
// SIGKILL when kill), every one before waiting, and waits until they are
// gone.
func (b *builder) stopPetrels(targets []*NodeState, kill bool) error {
	sig, signame := syscall.SIGTERM, "SIGTERM"
	if kill {
		sig, signame = syscall.SIGKILL, "SIGKILL"
	}
	var stopped []int
	for _, n := range targets {
		pid, ok := pidFile(b.state.Name, n.Name+"-petrel")
		if !ok || !alive(pid) || markedPids(b.state.Name)[pid] == "" {
			b.step("%s: petrel is not running; starting it", n.Name)
			continue
		}
		b.step("%s: sending %s to petrel (pid %d)", n.Name, signame, pid)
		if err := syscall.Kill(pid, sig); err != nil {
			return fmt.Errorf("%s: kill %d: %w", n.Name, pid, err)
		}
		stopped = append(stopped, pid)
	}
	return poll(15*time.Second, 20*time.Millisecond, func() error {
		for _, pid := range stopped {
			if alive(pid) {
				return fmt.Errorf("petrel (pid %d) still runs 15s after %s", pid, signame)
			}
		}
		return nil
	})
}

// petrelNodes resolves node names to the lab's petrel nodes (every one
// when names is empty), refusing a name that is not one.
func (b *builder) petrelNodes(names []string) ([]*NodeState, error) {
	all := b.petrels()
	byName := map[string]*NodeState{}
	var known []string
	for _, n := range all {
		byName[n.Name] = n
		known = append(known, n.Name)
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []*NodeState
	for _, name := range names {
		n := byName[name]
		if n == nil {
			return nil, fmt.Errorf("lab %s has no petrel node %q (petrel nodes: %s)", b.state.Name, name, strings.Join(known, ", "))
		}
		out = append(out, n)
	}
	return out, nil
}
