package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	petrelpb "github.com/petrel-net/petrel/proto"
)

// Exit codes of `petrel explain`.
const (
	ExplainInstalled    = 0 // known and in the FIB (and exported, for its own prefixes)
	ExplainNotInstalled = 1 // known, but not in the FIB or held back from a peer
	ExplainUnknown      = 2 // nobody knows the prefix
	ExplainError        = 3 // no answer (daemon down, bad argument)
)

// Explain is `petrel explain TARGET`.
func Explain(ctx context.Context, socket, output, target string, w io.Writer) error {
	if err := checkFormat(output); err != nil {
		return ExitError{ExplainError, err}
	}
	c, err := Dial(ctx, socket)
	if err != nil {
		return ExitError{ExplainError, err}
	}
	defer c.Close()
	resp, err := c.PetrelClient.Explain(ctx, &petrelpb.ExplainRequest{Target: target})
	if err != nil {
		return ExitError{ExplainError, err}
	}
	if output == "table" {
		WriteExplain(w, resp)
	} else if err := writeMessage(w, resp, output); err != nil {
		return ExitError{ExplainError, err}
	}
	switch resp.Verdict {
	case petrelpb.ExplainResponse_INSTALLED:
		return nil
	case petrelpb.ExplainResponse_NOT_INSTALLED:
		return ExitError{Code: ExplainNotInstalled}
	}
	return ExitError{Code: ExplainUnknown}
}

// WriteExplain prints the answer section by section: origin, BGP paths,
// export per peer, kernel, findings.
func WriteExplain(w io.Writer, r *petrelpb.ExplainResponse) {
	title := r.Prefix
	switch {
	case r.Prefix == "":
		title = r.Target // nothing covers it
	case r.Prefix != r.Target:
		title = fmt.Sprintf("%s (longest match for %s)", r.Prefix, r.Target)
	}
	fmt.Fprintf(w, "%s: %s\n", title, verdictText(r.Verdict))
	if r.Verdict == petrelpb.ExplainResponse_UNKNOWN && r.Prefix == "" {
		writeFindings(w, r.Summary)
		return
	}
	fmt.Fprintln(w, "\norigin:")
	for _, line := range originLines(r.Origin) {
		fmt.Fprintln(w, "  "+line)
	}
	writeExplainPaths(w, r.Paths)
	writeExports(w, r.Exports)
	writeFIB(w, r.Fib)
	writeFindings(w, r.Summary)
}

func verdictText(v petrelpb.ExplainResponse_Verdict) string {
	switch v {
	case petrelpb.ExplainResponse_INSTALLED:
		return "installed"
	case petrelpb.ExplainResponse_NOT_INSTALLED:
		return "NOT installed or NOT exported (see findings)"
	}
	return "unknown"
}

func originLines(o *petrelpb.Origin) []string {
	var out []string
	if o.GetBlock() != "" {
		line := "IPAM block " + o.Block
		if o.Affinity != "" {
			line += fmt.Sprintf(", affine to %s (%s)", o.Affinity, orText(o.AffinityState, "no BlockAffinity"))
		} else {
			line += ", affine to no node"
		}
		out = append(out, line)
	}
	if o.GetPool() != "" {
		out = append(out, fmt.Sprintf("IPPool %s (%s, vxlanMode %s)", o.Pool, o.PoolCidr, orText(o.VxlanMode, "Never")))
	}
	switch {
	case o.GetBorrowed():
		out = append(out, fmt.Sprintf("address borrowed by node %s from the block's node (handle %s)", o.UsedBy, o.Handle))
	case o.GetAllocated():
		out = append(out, fmt.Sprintf("address allocated to handle %s on node %s", o.Handle, orText(o.UsedBy, "?")))
	}
	for _, s := range o.GetSources() {
		out = append(out, "local path injected by "+sourceText(s))
	}
	if len(out) == 0 {
		out = append(out, "not in IPAM, not injected by this node")
	}
	return out
}

func sourceText(s string) string {
	switch s {
	case "originate":
		return "originate (this node's block or borrowed address)"
	case "kernel":
		return "kernel (an alien kernel route, learned)"
	case "direct":
		return "direct (a connected prefix)"
	}
	return s
}

func writeExplainPaths(w io.Writer, paths []*petrelpb.Path) {
	switch len(paths) {
	case 0:
		fmt.Fprintln(w, "\nBGP: no path")
		return
	case 1:
		fmt.Fprintln(w, "\nBGP paths:")
	default:
		fmt.Fprintf(w, "\nBGP paths (ECMP set of %d):\n", len(paths))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NEXT HOP\tFROM\tAS PATH\tLOCAL PREF\tCOMMUNITIES\tSELECTED")
	for _, p := range paths {
		pref := "-"
		if p.LocalPref > 0 {
			pref = fmt.Sprint(p.LocalPref)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", orDash(p.NextHop), pathSource(p), asPath(p.AsPath), pref, orDash(strings.Join(p.Communities, " ")), pathSelection(p))
	}
	tw.Flush()
}

func writeExports(w io.Writer, exports []*petrelpb.PeerExport) {
	if len(exports) == 0 {
		return
	}
	fmt.Fprintln(w, "\nexport:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PEER\tNAME\tTYPE\tSTATE\tEXPORTED\tRULE")
	for _, e := range exports {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", e.Peer, e.Name, e.Type, e.State, yesNo(e.Exported), e.Rule)
	}
	tw.Flush()
}

func writeFIB(w io.Writer, f *petrelpb.FIBState) {
	if f == nil {
		fmt.Fprintln(w, "\nkernel: kernel sync is off")
		return
	}
	fmt.Fprintln(w, "\nkernel:")
	switch {
	case f.Installed:
		fmt.Fprintf(w, "  installed by %s, %s\n", f.Owner, nextHopText(f.NextHops))
	case f.Wanted:
		fmt.Fprintf(w, "  NOT installed; kernel sync wants %s\n", nextHopText(f.NextHops))
	default:
		fmt.Fprintln(w, "  not installed")
	}
	if f.Reason != "" {
		fmt.Fprintln(w, "  why: "+f.Reason)
	}
	for _, k := range f.Kernel {
		fmt.Fprintf(w, "  kernel table: %s route, protocol %s, owner %s, %s\n", k.Type, k.Protocol, k.Owner, nextHopText(k.NextHops))
	}
}

func nextHopText(nhs []*petrelpb.NextHop) string {
	if len(nhs) == 0 {
		return "no next hop"
	}
	var parts []string
	for _, nh := range nhs {
		switch {
		case nh.Blackhole:
			parts = append(parts, "blackhole")
		case nh.Gateway == "":
			parts = append(parts, "dev "+nh.Interface)
		default:
			parts = append(parts, fmt.Sprintf("via %s dev %s", nh.Gateway, orDash(nh.Interface)))
		}
	}
	return strings.Join(parts, ", ")
}

func writeFindings(w io.Writer, findings []string) {
	writeList(w, "\nfindings:", "  - ", findings)
}

func orText(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}
