// Package version reports petrel's build version.
package version

import (
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X
// github.com/petrel-net/petrel/internal/version.Version=v1.2.3"; otherwise
// it comes from the module build information.
var Version = ""

// String returns the version, falling back to the VCS revision or "dev".
func String() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "dev-" + s.Value[:12]
		}
	}
	return "dev"
}

// GoBGP returns the version of the embedded GoBGP library.
func GoBGP() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == "github.com/osrg/gobgp/v4" {
				return d.Version
			}
		}
	}
	return "unknown"
}
