package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// startProfiling writes a CPU profile to $PETREL_CPUPROFILE and, at stop,
// a heap profile to $PETREL_MEMPROFILE: how BENCHMARKS.md finds where time
// and memory go in a daemon that runs inside a network namespace.
func startProfiling() (stop func()) {
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
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err != nil {
				fmt.Fprintln(os.Stderr, "petrel: heap profile:", err)
				return
			}
			defer f.Close()
			runtime.GC()
			_ = pprof.Lookup("allocs").WriteTo(f, 0)
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
