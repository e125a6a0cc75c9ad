// Command petrel is the BGP node agent and its command-line client.
//
// Invoked as petrel-cni or petrel-ipam (install-cni copies it under those
// names into the CNI bin directory) it is the CNI plugin or the IPAM
// plugin instead; see package cni.
package main

import (
	"fmt"
	"os"

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
		fmt.Fprintln(os.Stderr, "petrel:", err)
		os.Exit(1)
	}
}
