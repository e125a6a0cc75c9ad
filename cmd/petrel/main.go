// Command petrel is the BGP node agent and its command-line client.
//
// Invoked as petrel-cni or petrel-ipam (install-cni copies it under those
// names into the CNI bin directory) it is the CNI plugin or the IPAM
// plugin instead; see package cni.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/cni"
	"github.com/petrel-net/petrel/internal/version"
)

func main() {
	if role := cni.Role(os.Args[0]); role != "" {
		cni.Main(role, version.String())
		return
	}
	root := newRootCmd()
	root.AddCommand(newInstallCNICmd())
	if err := root.Execute(); err != nil {
		// explain's exit codes carry its verdict; nothing to print then.
		var exit cli.ExitError
		if !errors.As(err, &exit) {
			exit = cli.ExitError{Code: 1, Err: err}
		}
		if exit.Err != nil {
			fmt.Fprintln(os.Stderr, "petrel:", exit.Err)
		}
		os.Exit(exit.Code)
	}
}
