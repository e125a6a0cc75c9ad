package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	petrelpb "github.com/petrel-net/petrel/proto"
)

// WriteRoutes prints one line per path: the prefix on its best path, the
// multipath members below it.
func WriteRoutes(w io.Writer, routes []*petrelpb.Route) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PREFIX\tNEXT HOP\tFROM\tAS PATH\tSELECTED")
	for _, r := range routes {
		for i, p := range r.Paths {
			prefix := r.Prefix
			if i > 0 {
				prefix = ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", prefix, orDash(p.NextHop), pathSource(p), asPath(p.AsPath), pathSelection(p))
		}
	}
	return tw.Flush()
}

// WriteRoutesJSON prints the routes as a JSON array.
func WriteRoutesJSON(w io.Writer, routes []*petrelpb.Route) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if routes == nil {
		routes = []*petrelpb.Route{}
	}
	return enc.Encode(routes)
}

// pathSource is where a path came from: its peer, or "local".
func pathSource(p *petrelpb.Path) string {
	if p.Local {
		return "local"
	}
	return p.Peer
}

// pathSelection says whether a path is the best or another member of the
// multipath set, and whether graceful restart keeps it.
func pathSelection(p *petrelpb.Path) string {
	sel := "multipath"
	if p.Best {
		sel = "best"
	}
	switch {
	case p.LlgrStale:
		sel += " (llgr-stale, depreferred)"
	case p.Stale:
		sel += " (stale)"
	}
	return sel
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func asPath(as []uint32) string {
	if len(as) == 0 {
		return "-"
	}
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = fmt.Sprint(a)
	}
	return strings.Join(parts, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
