package bench

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/bench/feeder"
	"github.com/petrel-net/petrel/e2e/harness"
)

const (
	ingestN       = 100_000
	ingestTimeout = 120 * time.Second
	// ingestPoll is the resolution of the ingest time. Polls read
	// fib_triestat (~1 ms at 100k routes) rather than dumping the routes
	// (~40 ms), so polling hardly slows down the daemon being measured.
	ingestPoll = 100 * time.Millisecond
)

// ingestBase holds the advertised /26s: 100k of them span 10.0.0.0 to
// 10.97.167.192, clear of the link subnet.
var (
	ingestBase = netip.MustParsePrefix("10.0.0.0/9")
	ingestLink = netip.MustParsePrefix("10.200.0.0/24")
)

// BenchmarkIngest100k: a ToR advertises 100,000 /26s over iBGP; how long
// does the node daemon take, from its process start, until all of them are
// routes in the node's kernel (main table, the contender's protocol)? Also
// its peak RSS and the CPU it used until then.
//
// Every contender runs against each ToR feeder (see ingestFeeders): BIRD
// with static routes, and the pre-encoded feeder of package feeder, which
// cannot be the bottleneck. Sub-benchmarks are FEEDER/CONTENDER, e.g.
// -bench 'Ingest100k/go-feeder/petrel'.
func BenchmarkIngest100k(b *testing.B) {
	prefixes, err := genPrefixes(ingestBase, 26, ingestN)
	if err != nil {
		b.Fatal(err)
	}
	if overlapsAny(prefixes, ingestLink) {
		b.Fatalf("generated prefixes overlap the link %v", ingestLink)
	}
	// Encoded once, before any clock runs.
	feed, err := feeder.NewFeed(prefixes, torAddr)
	if err != nil {
		b.Fatal(err)
	}
	for _, source := range ingestFeeders {
		b.Run(source, func(b *testing.B) {
			title := fmt.Sprintf("ingest of %d /26 routes into the kernel, fed by %s", len(prefixes), source)
			compare(b, title, allContenders, func(b *testing.B, kind string) result {
				return ingest(b, kind, source, prefixes, feed)
			})
		})
	}
}

var (
	torAddr  = netip.MustParseAddr("10.200.0.1")
	nodeAddr = netip.MustParseAddr("10.200.0.2")
)

func ingest(b *testing.B, kind, source string, prefixes []netip.Prefix, feed *feeder.Feed) result {
	lab := harness.New(b)
	tor, node := lab.Node("tor"), lab.Node("node")
	lab.Link(tor, "eth0", torAddr.String()+"/24", node, "eth0", nodeAddr.String()+"/24")

	// The tor must have all routes before the node starts, so that the
	// clock measures the node only.
	var goTor *passiveFeeder
	switch source {
	case birdFeeder:
		requireInstalled(b, "the BIRD feeder", "bird", "birdc")
		t0 := time.Now()
		torBird := harness.StartBird(b, tor, torBirdConfig(torAddr.String(), []string{nodeAddr.String()}, prefixes))
		waitBirdRoutes(b, torBird, len(prefixes), 60*time.Second)
		b.Logf("%s: tor BIRD loaded %d static routes in %v", kind, len(prefixes), time.Since(t0).Round(time.Millisecond))
	case goFeeder:
		goTor = startPassiveFeeder(b, tor, torAddr, feed)
	default:
		b.Fatalf("unknown feeder %q", source)
	}
	proto := kernelProto(kind)

	counter, closeCounter := newRouteCounter(b, node.NS, proto, len(prefixes))
	defer closeCounter()
	nl, fib := counter.NL, counter.Fib

	start := time.Now()
	d := startNode(b, lab, node, kind, nodeSpec{RouterID: nodeAddr.String(), Peers: []string{torAddr.String()}})
	res, err := pollUntilCount(start, ingestTimeout, ingestPoll, len(prefixes), counter.Count, d.Alive)
	// Sample CPU right away: it is the cost of getting here.
	cpu, cpuErr := d.CPU()
	if err != nil {
		first := "no route at all"
		if res.First > 0 {
			first = "first route after " + res.First.Round(time.Millisecond).String()
		}
		b.Fatalf("%s did not install all routes: %v (%s; about %d of %d installed)", kind, err, first, res.Last, len(prefixes))
	}
	if cpuErr != nil {
		b.Fatal(cpuErr)
	}
	hwm := d.peakRSS(b)
	// What polling costs, with all routes in place.
	fileRSS, err := d.Memory("RssFile")
	if err != nil {
		b.Fatal(err)
	}
	t1 := time.Now()
	all, err := nl.CountRoutes(tableMain, proto, -1)
	if err != nil {
		b.Fatal(err)
	}
	t2 := time.Now()
	if _, err := fib.Routes("Main"); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: a netlink dump of the %d proto-%d routes takes %v, a fib_triestat read %v",
		kind, all, proto, t2.Sub(t1).Round(time.Microsecond), time.Since(t2).Round(time.Microsecond))
	if all > len(prefixes) {
		b.Logf("%s: also installed: %s", kind, strings.TrimSpace(node.MustRun(b, "sh", "-c",
			fmt.Sprintf("ip route show table main proto %d | grep -v '/26 '", proto))))
	}
	if goTor != nil {
		state, err := goTor.report(start)
		if err != nil {
			b.Fatalf("%s: feeder: %v", kind, err)
		}
		b.Logf("%s: go feeder (times from the node's start): %s", kind, state)
	}
	// Show one installed route, to make plain what was counted.
	sample := strings.TrimSpace(node.MustRun(b, "ip", "route", "show", "table", "main", prefixes[len(prefixes)/2].String()))
	b.Logf("%s: all %d routes after %v (first after %v, last poll counted %d); e.g. %s",
		kind, len(prefixes), res.Done.Round(time.Millisecond), res.First.Round(time.Millisecond), res.Last, sample)

	return result{
		{"ingest", "s", seconds(res.Done), false},
		{"first", "s", seconds(res.First), false},
		{"first_to_last", "s", seconds(res.Done - res.First), false},
		{"rss", "MB", megabytes(hwm), false},
		// The file-backed part of the RSS (the executable's pages): the
		// anonymous peak is about rss - rss_file.
		{"rss_file", "MB", megabytes(fileRSS), false},
		{"cpu", "s", seconds(cpu), false},
	}
}
