// Package profiling writes the daemon's CPU and heap profiles when the
// environment asks for them: how docs/BENCHMARKS.md finds where time and
// memory go in a daemon that runs inside a network namespace.
package profiling

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"time"
)

// Start writes a CPU profile to $PETREL_CPUPROFILE and, at stop, a heap
// profile to $PETREL_MEMPROFILE (or $PETREL_MEMPROFILE_AFTER after start).
func Start() (stop func()) {
	var stops []func()
	if path := os.Getenv("PETREL_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		} else {
			fmt.Fprintln(os.Stderr, "petrel: cpu profile:", err)
		}
	}
	if path := os.Getenv("PETREL_MEMPROFILE"); path != "" {
		writeHeap := func() {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "petrel: heap profile:", err)
				return
			}
			defer f.Close()
			runtime.GC()
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
		}
		// A daemon killed by its test harness never reaches stop: with
		// $PETREL_MEMPROFILE_AFTER (a duration) the profile is written then.
		if after, err := time.ParseDuration(os.Getenv("PETREL_MEMPROFILE_AFTER")); err == nil {
			time.AfterFunc(after, writeHeap)
		} else {
			stops = append(stops, writeHeap)
		}
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
