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
	"os"
	"testing"

	"github.com/petrel-net/petrel/e2e/harness"
)

// petrelBin is the daemon binary under test.
var petrelBin string

func TestMain(m *testing.M) { os.Exit(harness.RunWithPetrel(m, &petrelBin)) }
