package lab

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/petrel-net/petrel/internal/netnsbuild"
)

// Down removes everything of lab name: its processes (by pid file and by
// the PETREL_LAB marker in their environment), every namespace named
// "plab-<name>-*" (killing whatever still runs in it; their veths and
// bridges go with them) and its state directory. It works from what is
// there, not from state.json, so it also cleans up after a crashed up.
func Down(name string, out io.Writer) error {
	if !labNameRE.MatchString(name) {
		return fmt.Errorf("invalid lab name %q", name)
	}
	if os.Geteuid() != 0 {
		return errors.New("petrel lab needs root (network namespaces)")
	}
	if out == nil {
		out = io.Discard
	}
	dir := Dir(name)
	pids := labPids(name)
	var errs []error
	if len(pids) > 0 {
		fmt.Fprintf(out, "[%s] stopping %d processes\n", name, len(pids))
		killAll(pids, 5*time.Second)
	}
	// A Kubernetes lab's pods run in containerd's namespaces, unmarked:
	// they are found by the kubelets' cgroups.
	if err := removeCgroups(NSPrefix + name + "-"); err != nil {
		errs = append(errs, err)
	}
	mine, err := labNamespaces(name)
	if err != nil {
		errs = append(errs, err)
	}
	if len(mine) > 0 {
		fmt.Fprintf(out, "[%s] deleting %d namespaces\n", name, len(mine))
	}
	for _, ns := range mine {
		if err := netnsbuild.Delete(ns); err != nil {
			errs = append(errs, err)
		}
	}
	// Anything marked that escaped (started while we were deleting).
	var rest []int
	for pid := range markedPids(name) {
		rest = append(rest, pid)
	}
	killAll(rest, time.Second)
	for _, d := range []string{dir, KubeDir(name)} {
		if _, err := os.Stat(d); err == nil {
			fmt.Fprintf(out, "[%s] removing %s\n", name, d)
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	_ = os.Remove(KubeRoot) // when no other lab uses it
	if len(pids) == 0 && len(mine) == 0 && len(errs) == 0 {
		fmt.Fprintf(out, "[%s] gone\n", name)
	}
	return errors.Join(errs...)
}

// labPids are the processes of lab name, sorted: those that carry its
// marker, found directly or through their pid files.
func labPids(name string) []int {
	marked := markedPids(name)
	pidSet := map[int]bool{}
	files, _ := filepath.Glob(filepath.Join(Dir(name), "pids", "*.pid"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && marked[pid] != "" {
			pidSet[pid] = true // only if it still carries our marker: pids get reused
		}
	}
	for pid := range marked {
		pidSet[pid] = true
	}
	return slices.Sorted(maps.Keys(pidSet))
}
