package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/petrel-net/petrel/ipam"
)

// WriteIPAMUsage prints pools with used and free addresses, like
// `calicoctl ipam show`, and with blocks the node blocks too.
func WriteIPAMUsage(w io.Writer, pools []ipam.PoolUsage, blocks map[string][]ipam.BlockInfo) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUPING\tCIDR\tIPS TOTAL\tIPS IN USE\tIPS FREE\tBLOCKS")
	for _, p := range pools {
		state := "IP Pool"
		if p.Disabled {
			state = "IP Pool (disabled)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\n", state, p.CIDR, p.Size, p.Used, p.Free, p.Blocks)
	}
	for node, bs := range blocks {
		for _, b := range bs {
			state := b.State
			switch {
			case b.Missing:
				state += " (no block)"
			case b.Unusable != "":
				state += " (unusable: " + b.Unusable + ")"
			}
			fmt.Fprintf(tw, "Block (%s, %s)\t%s\t%d\t%d\t%d\t\n", node, state, b.CIDR, b.Used+b.Free, b.Used, b.Free)
		}
	}
	return tw.Flush()
}

// WriteIPAMCheck prints a check report; it says so plainly when clean.
func WriteIPAMCheck(w io.Writer, r ipam.Report) {
	if r.OK() {
		fmt.Fprintf(w, "IPAM is consistent: %d blocks, %d handles, %d affinities checked, no problems.\n", r.Blocks, r.Handles, r.Affinities)
		return
	}
	fmt.Fprintln(w, r.String())
}
