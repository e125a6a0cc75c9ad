// Command petrel is the BGP node agent and its command-line client.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "petrel:", err)
		os.Exit(1)
	}
}
