package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/petrel-net/petrel/daemon"
	"github.com/petrel-net/petrel/datastore"
)

// DryRunApply is `petrel apply --dry-run -f FILE`: what the daemons would
// do if the file were applied; nothing is written.
func DryRunApply(ctx context.Context, file string, stdin io.Reader, open Opener, out io.Writer) error {
	objs, err := readObjects(file, stdin)
	if err != nil {
		return err
	}
	return dryRun(ctx, daemon.Change{Apply: objs}, open, out)
}

// DryRunDelete is `petrel delete --dry-run KIND NAME`.
func DryRunDelete(ctx context.Context, kindArg, name string, open Opener, out io.Writer) error {
	kind, err := datastore.ParseKind(kindArg)
	if err != nil {
		return err
	}
	o, err := datastore.New(kind)
	if err != nil {
		return err
	}
	o.SetName(name)
	return dryRun(ctx, daemon.Change{Delete: []datastore.Object{o}}, open, out)
}

func dryRun(ctx context.Context, ch daemon.Change, open Opener, out io.Writer) error {
	return open(func(b datastore.Backend) error {
		impacts, err := daemon.DryRun(ctx, b, ch)
		if err != nil {
			return err
		}
		WriteImpacts(out, impacts)
		return nil
	})
}

// WriteImpacts prints, per node, the sessions and exports that would
// change.
func WriteImpacts(w io.Writer, impacts []daemon.NodeImpact) {
	fmt.Fprintln(w, "dry run: nothing written")
	for _, n := range impacts {
		if n.Empty() {
			fmt.Fprintf(w, "%s: no change\n", n.Node)
			continue
		}
		fmt.Fprintf(w, "%s:\n", n.Node)
		for _, l := range []struct {
			what  string
			lines []string
		}{
			{"session added", n.Added}, {"session removed", n.Removed}, {"session reset (goes down)", n.Reset},
			{"export starts", n.ExportStarts}, {"export stops", n.ExportStops}, {"held back by a filter", n.ExportHeld},
			{"new problem", n.NewProblems},
		} {
			for _, line := range l.lines {
				fmt.Fprintf(w, "  %-26s %s\n", l.what, line)
			}
		}
		if n.PolicyChanged {
			fmt.Fprintf(w, "  %-26s %s\n", "route policy changes", "re-applied with soft resets; no session goes down")
		}
	}
}
