package lab

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where the cgroup hierarchies are mounted (v1 here: one
// directory per controller).
const cgroupRoot = "/sys/fs/cgroup"

// cgroupHierarchies are the mounted hierarchies (those with a
// cgroup.procs at their top).
func cgroupHierarchies() []string {
	var hs []string
	entries, _ := os.ReadDir(cgroupRoot)
	for _, e := range entries {
		h := filepath.Join(cgroupRoot, e.Name())
		if _, err := os.Stat(filepath.Join(h, "cgroup.procs")); err == nil {
			hs = append(hs, h)
		}
	}
	return hs
}

// createCgroup makes name at the top of every hierarchy: a kubelet's
// cgroupRoot must exist before it starts. A new cpuset has no CPUs or
// memory nodes until given its parent's.
func createCgroup(name string) error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			errs = append(errs, err)
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				errs = append(errs, os.WriteFile(filepath.Join(dir, f), v, 0o644))
			}
		}
	}
	return errors.Join(errs...)
}

// labCgroups are the cgroups a lab's kubelets made: every directory under a
// hierarchy's top-level "<prefix>*" ones, deepest first.
func labCgroups(prefix string) []string {
	var dirs []string
	for _, h := range cgroupHierarchies() {
		tops, _ := filepath.Glob(filepath.Join(h, prefix+"*"))
		for _, top := range tops {
			_ = filepath.WalkDir(top, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
		}
	}
	// Deepest first, so that rmdir finds each one empty.
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

// cgroupPids are the processes in the given cgroups.
func cgroupPids(dirs []string) []int {
	var pids []int
	for _, d := range dirs {
		data, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// removeCgroups kills what still runs in the lab's cgroups (the pods'
// processes, which carry no lab marker) and removes them.
func removeCgroups(prefix string) error {
	dirs := labCgroups(prefix)
	if len(dirs) == 0 {
		return nil
	}
	var err error
	for range 50 {
		for _, pid := range cgroupPids(dirs) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		err = nil
		for _, d := range dirs {
			if e := syscall.Rmdir(d); e != nil && !errors.Is(e, syscall.ENOENT) {
				err = &os.PathError{Op: "rmdir", Path: d, Err: e}
			}
		}
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
