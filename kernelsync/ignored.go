package kernelsync

import (
	"context"
	"slices"
)

// SetIgnoredInterfaces applies BGPConfiguration ignoredInterfaces live:
// protocol direct leaves out the interfaces these names match (wildcards
// as in Config.Interfaces), ahead of the configured pattern list, as confd
// renders them into BIRD's protocol direct. The prefixes of newly ignored
// interfaces are withdrawn from the speaker and those of interfaces no
// longer ignored offered again, with no restart. It returns once Run has
// taken the change.
func (s *Sync) SetIgnoredInterfaces(ctx context.Context, names []string) error {
	patterns := ignoredPatterns(names, s.cfg.Interfaces)
	// query runs fn on Run's goroutine, which owns the device view.
	return s.query(ctx, func() {
		if slices.Equal(s.dev.patterns, patterns) {
			return
		}
		s.dev.patterns = patterns
		s.directDirty = true
	})
}

// ignoredPatterns puts the ignored names, as exclusions, in front of the
// configured list: the first match decides, so they win over its "*".
func ignoredPatterns(names, configured []string) []string {
	out := make([]string, 0, len(names)+len(configured))
	for _, n := range names {
		if n != "" {
			out = append(out, "-"+n)
		}
	}
	return append(out, configured...)
}
