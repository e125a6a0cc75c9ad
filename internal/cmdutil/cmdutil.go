// Package cmdutil runs external commands (ip, sysctl, daemons' CLIs) the
// way the lab and the test harness both need.
package cmdutil

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// Run runs a command and returns its combined output; the error carries the
// command line and the output, which is what a failure report needs.
func Run(name string, args ...string) (string, error) {
	var buf bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	out := buf.String()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(out))
	}
	return out, nil
}
