package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	petrelpb "github.com/petrel-net/petrel/proto"
)

// RouteFilter narrows `petrel routes`.
type RouteFilter struct {
	Within string // only prefixes inside this CIDR
	Peer   string // only prefixes with a path from this peer
}

// ShowFIB is `petrel routes --fib`: kernel sync's prefixes, installed or
// not, owner, next hops, stale, and why not.
func ShowFIB(ctx context.Context, socket, output string, f RouteFilter, w io.Writer) error {
	if err := checkFormat(output); err != nil {
		return err
	}
	c, err := Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.ListFIB(ctx, &petrelpb.ListFIBRequest{Within: f.Within, Peer: f.Peer})
	if err != nil {
		return err
	}
	if output != "table" {
		return writeMessage(w, resp, output)
	}
	return WriteFIB(w, resp.Routes)
}

// WriteFIB prints one line per prefix.
func WriteFIB(w io.Writer, routes []*petrelpb.FIBRoute) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tINSTALLED\tOWNER\tNEXT HOPS\tFROM\tNOTE")
	for _, r := range routes {
		installed := yesNo(r.Installed)
		if r.Installed && r.Stale {
			installed += " (stale)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Prefix, installed, orDash(r.Owner), nextHopText(r.NextHops),
			orText(strings.Join(r.Peers, ","), "local"), orDash(r.Reason))
	}
	return tw.Flush()
}

// routesFromPeer keeps the routes with a path from peer ("" keeps all).
func routesFromPeer(routes []*petrelpb.Route, peer string) []*petrelpb.Route {
	if peer == "" {
		return routes
	}
	return slices.DeleteFunc(routes, func(r *petrelpb.Route) bool {
		return !slices.ContainsFunc(r.Paths, func(p *petrelpb.Path) bool { return p.Peer == peer })
	})
}
