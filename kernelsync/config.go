package kernelsync

import (
	"log/slog"
	"time"
)

// Config tunes the kernel sync.
type Config struct {
	// Protocol marks petrel's routes (default 12, as BIRD's in calico-node).
	Protocol int
	// Table is the routing table petrel programs (default 254, main).
	Table int
	// ScanTime is the period of the full reconcile safety net (default 2 s).
	ScanTime time.Duration
	// Learn imports alien kernel routes into the speaker.
	Learn bool
	// LearnIgnore lists protocols never learned: the dataplane's own routes
	// (workload /32s, VXLAN routes) must not come back as BGP routes.
	LearnIgnore []int
	// Interfaces is the ordered pattern list of protocol direct: the first
	// matching pattern decides, "-" excludes ("-cali*"), no match excludes.
	Interfaces []string
	// RestartWait bounds how long routes adopted at start wait to be
	// refreshed by the peers before they are swept (graceful restart).
	RestartWait time.Duration
	Logger      *slog.Logger
	// Observer, when set, is told how long the loop's work takes (metrics
	// without a metrics library in this package).
	Observer Observer
}

// Observer receives kernel sync timings.
type Observer interface {
	// Flush: ops routes written in one batch, taking took; sinceUpdate is
	// the time from the oldest speaker change in the batch to its write.
	Flush(ops int, took, sinceUpdate time.Duration)
	Reconcile(took time.Duration)
}

type nopObserver struct{}

func (nopObserver) Flush(int, time.Duration, time.Duration) {}
func (nopObserver) Reconcile(time.Duration)                 {}

// Defaults.
const (
	DefaultProtocol    = 12
	DefaultTable       = 254
	DefaultScanTime    = 2 * time.Second
	DefaultRestartWait = 120 * time.Second
)

// DefaultInterfaces is calico-node's protocol direct list, plus the tunnel
// devices (vxlan.calico, vxlan-v6.calico, tunl0): Calico's export filter rejects routes through them, and
// leaving the tunnel address out of direct is how petrel does the same.
var DefaultInterfaces = []string{"-cali*", "-kube-ipvs*", "-vxlan.calico", "-vxlan-v6.calico", "-tunl0", "*"}

func (c Config) withDefaults() Config {
	if c.Protocol == 0 {
		c.Protocol = DefaultProtocol
	}
	if c.Table == 0 {
		c.Table = DefaultTable
	}
	if c.ScanTime == 0 {
		c.ScanTime = DefaultScanTime
	}
	if c.RestartWait == 0 {
		c.RestartWait = DefaultRestartWait
	}
	if c.Interfaces == nil {
		c.Interfaces = DefaultInterfaces
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}
