package main

import (
	"testing"

	"github.com/spf13/cobra"
)

// Every command shows an example in its --help.
func TestEveryCommandHasAnExample(t *testing.T) {
	root := newRootCmd()
	root.AddCommand(newInstallCNICmd())
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" && c.Name() != "help" && c.Name() != "completion" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
