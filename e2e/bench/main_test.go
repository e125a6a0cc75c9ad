// Package bench holds petrel's comparative benchmarks: the same workload run
// against petrel and against BIRD 2 (configured as calico-node configures
// it), each contender in its own freshly built lab of network namespaces.
//
// Run them with
//
//	go test -count=1 -run '^$' -bench . -benchtime 1x -timeout 30m ./e2e/bench/
//
// Each benchmark measures one run per contender whatever b.N is (the work is
// far too slow to repeat), so -benchtime 1x is the natural setting. They need
// root, like the e2e tests, and skip without it. PETREL_BIN selects an
// already built daemon binary; otherwise one is built for the run.
package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// petrelBin is the daemon binary under test.
var petrelBin string

func TestMain(m *testing.M) {
	// Without root every benchmark skips, so there is nothing to build.
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	if petrelBin = os.Getenv("PETREL_BIN"); petrelBin != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "petrel-bench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	petrelBin = filepath.Join(dir, "petrel")
	build := exec.Command("go", "build", "-o", petrelBin, "github.com/petrel-net/petrel/cmd/petrel")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench: building petrel:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
