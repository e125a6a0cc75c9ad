package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RunWithPetrel is a TestMain body for packages that run the petrel
// binary: as root it builds cmd/petrel once (or takes $PETREL_BIN), sets
// *bin, runs the tests and removes the build. Without root the tests skip
// by themselves and nothing is built.
func RunWithPetrel(m *testing.M, bin *string) int {
	if os.Geteuid() != 0 {
		return m.Run()
	}
	if *bin = os.Getenv("PETREL_BIN"); *bin != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "petrel-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*bin = filepath.Join(dir, "petrel")
	// Static, as deploy/Dockerfile builds it: the Kubernetes lab puts it in
	// an image.
	build := exec.Command("go", "build", "-o", *bin, "github.com/petrel-net/petrel/cmd/petrel")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building petrel:", err)
		return 1
	}
	return m.Run()
}
