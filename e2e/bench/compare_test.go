package bench

import (
	"fmt"
	"math"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// metric is one measured figure of a contender, reported as unit
// "<name>_<unit>" (e.g. ingest_s) and compared to BIRD's as
// "<name>_<contender>/bird" (e.g. ingest_petrel/bird).
type metric struct {
	Name, Unit string
	Value      float64
	// Lab marks a figure of the lab rather than of the daemon (a setup
	// time, say): reported, but not compared.
	Lab bool
}

// result is a contender's metrics in report order.
type result []metric

// report hands the metrics to the benchmark framework and hides ns/op,
// which for a single timed-by-hand run means nothing.
func (r result) report(b *testing.B) {
	for _, m := range r {
		b.ReportMetric(m.Value, m.Name+"_"+m.Unit)
	}
	b.ReportMetric(0, "ns/op")
}

func (r result) get(name string) (float64, bool) {
	i := slices.IndexFunc(r, func(m metric) bool { return m.Name == name })
	if i < 0 {
		return 0, false
	}
	return r[i].Value, true
}

// The contenders, run in this order with BIRD first as the reference. FRR
// runs where a benchmark has an FRR node (the standalone-node ones).
var (
	allContenders = []string{"bird", "frr", "petrel"}
	birdAndPetrel = []string{"bird", "petrel"}
	reference     = "bird"
)

// requireContender skips b when kind's daemon is not installed (petrel is
// always there: TestMain builds it unless PETREL_BIN names one).
func requireContender(b *testing.B, kind string) {
	b.Helper()
	switch kind {
	case "bird":
		requireInstalled(b, "the bird contender", "bird", "birdc")
	case "frr":
		requireInstalled(b, "the frr contender", "vtysh", frrLibexec+"/zebra", frrLibexec+"/staticd", frrLibexec+"/bgpd")
	}
}

// requireInstalled skips b, naming what needs them, unless every one of
// the programs is installed.
func requireInstalled(b *testing.B, what string, programs ...string) {
	b.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			b.Skipf("%s not installed (%v): skipping %s", p, err, what)
		}
	}
}

// compare runs run once per contender as sub-benchmarks named after them,
// then a "ratio" sub-benchmark reporting each contender/BIRD for every
// metric, and logs a table of everything. A contender that fails or skips
// is left out of the ratios.
func compare(b *testing.B, title string, contenders []string, run func(b *testing.B, contender string) result) {
	harness.RequireRoot(b) // skip once, not per contender
	results := map[string]result{}
	for _, c := range contenders {
		b.Run(c, func(b *testing.B) {
			requireContender(b, c)
			r := run(b, c)
			r.report(b)
			results[c] = r
		})
	}
	b.Run("ratio", func(b *testing.B) {
		b.Log(formatTable(title, contenders, results))
		ref := results[reference]
		if ref == nil || len(results) < 2 {
			b.Skip("no ratio: BIRD or every other contender did not produce results (see above)")
		}
		for _, c := range contenders {
			if c == reference || results[c] == nil {
				continue
			}
			for _, m := range ref {
				if v, ok := results[c].get(m.Name); ok && m.Value != 0 && !m.Lab {
					b.ReportMetric(v/m.Value, m.Name+"_"+c+"/"+reference)
				}
			}
		}
		b.ReportMetric(0, "ns/op")
	})
}

// formatTable renders results as a readable table: one row per metric, a
// column per contender, then each contender's ratio to BIRD.
func formatTable(title string, contenders []string, results map[string]result) string {
	var names []string
	units := map[string]string{}
	lab := map[string]bool{}
	for _, c := range contenders {
		for _, m := range results[c] {
			if _, ok := units[m.Name]; !ok {
				names = append(names, m.Name)
				units[m.Name] = m.Unit
				lab[m.Name] = m.Lab
			}
		}
	}
	var others []string
	for _, c := range contenders {
		if c != reference {
			others = append(others, c)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%s\n%-18s", title, "metric")
	for _, c := range contenders {
		fmt.Fprintf(&sb, " %10s", c)
	}
	for _, c := range others {
		fmt.Fprintf(&sb, " %12s", c+"/"+reference)
	}
	sb.WriteString("\n")
	for _, n := range names {
		fmt.Fprintf(&sb, "%-18s", n+" ("+units[n]+")")
		for _, c := range contenders {
			cell := "-"
			if v, ok := results[c].get(n); ok {
				cell = strconv.FormatFloat(v, 'f', 3, 64)
			}
			fmt.Fprintf(&sb, " %10s", cell)
		}
		ref, refOK := results[reference].get(n)
		for _, c := range others {
			cell := "-"
			if v, ok := results[c].get(n); ok && refOK && ref != 0 && !lab[n] {
				cell = strconv.FormatFloat(v/ref, 'f', 2, 64)
			}
			fmt.Fprintf(&sb, " %12s", cell)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// percentile returns the p-th percentile (0..100, nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func seconds(d time.Duration) float64 { return d.Seconds() }
func millis(d time.Duration) float64  { return float64(d) / float64(time.Millisecond) }
func megabytes(n uint64) float64      { return float64(n) / (1 << 20) }
