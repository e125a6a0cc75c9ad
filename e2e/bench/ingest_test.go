package bench

import (
	"fmt"
	"net/netip"
	"strconv"
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

// ingestFamily is what the IPv4 and IPv6 ingest benchmarks differ in.
type ingestFamily struct {
	shape routeShape
	// base holds the advertised prefixes, clear of link, the ToR—node
	// subnet.
	base, link netip.Prefix
	tor, node  netip.Addr
	// torID and nodeID are the router IDs (IPv4 addresses also on IPv6).
	torID, nodeID netip.Addr
	ipFamily      string   // `ip`'s family flag: "-4", "-6"
	contenders    []string // FRR's node config is IPv4 only
}

var (
	torAddr  = netip.MustParseAddr("10.200.0.1")
	nodeAddr = netip.MustParseAddr("10.200.0.2")

	// ingestIPv4: 100k /26s span 10.0.0.0 to 10.97.167.192.
	ingestIPv4 = ingestFamily{
		shape: ipv4Blocks, base: netip.MustParsePrefix("10.0.0.0/9"), link: netip.MustParsePrefix("10.200.0.0/24"),
		tor: torAddr, node: nodeAddr, torID: torAddr, nodeID: nodeAddr, ipFamily: "-4", contenders: allContenders,
	}
	// ingestIPv6: 100k /122s (Calico's IPv6 block size) span
	// fd00:1000::/96's first 6.4M addresses.
	ingestIPv6 = ingestFamily{
		shape: ipv6Blocks, base: netip.MustParsePrefix("fd00:1000::/96"), link: netip.MustParsePrefix("fd00:200::/64"),
		tor: netip.MustParseAddr("fd00:200::1"), node: netip.MustParseAddr("fd00:200::2"),
		torID: torAddr, nodeID: nodeAddr, ipFamily: "-6", contenders: birdAndPetrel,
	}
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
func BenchmarkIngest100k(b *testing.B) { benchmarkIngest(b, ingestIPv4) }

// BenchmarkIngest100kIPv6 is BenchmarkIngest100k for IPv6: 100,000 /122s
// over an iBGP session between IPv6 addresses (a link without IPv4), into
// the node's IPv6 main table; petrel and BIRD (an ipv6 channel, as confd's
// bird6.cfg) only. -bench 'Ingest100kIPv6/go-feeder/petrel' picks one.
func BenchmarkIngest100kIPv6(b *testing.B) { benchmarkIngest(b, ingestIPv6) }

func benchmarkIngest(b *testing.B, fam ingestFamily) {
	prefixes, err := genPrefixes(fam.base, fam.shape.Bits, ingestN)
	if err != nil {
		b.Fatal(err)
	}
	if overlapsAny(prefixes, fam.link) {
		b.Fatalf("generated prefixes overlap the link %v", fam.link)
	}
	// Encoded once, before any clock runs.
	feed, err := feeder.NewFeed(prefixes, fam.tor)
	if err != nil {
		b.Fatal(err)
	}
	for _, source := range ingestFeeders {
		b.Run(source, func(b *testing.B) {
			title := fmt.Sprintf("ingest of %d /%d routes into the kernel, fed by %s", len(prefixes), fam.shape.Bits, source)
			compare(b, title, fam.contenders, func(b *testing.B, kind string) result {
				return ingest(b, kind, source, fam, prefixes, feed)
			})
		})
	}
}

func ingest(b *testing.B, kind, source string, fam ingestFamily, prefixes []netip.Prefix, feed *feeder.Feed) result {
	lab := harness.New(b)
	tor, node := lab.Node("tor"), lab.Node("node")
	bits := "/" + strconv.Itoa(fam.link.Bits())
	lab.Link(tor, "eth0", fam.tor.String()+bits, node, "eth0", fam.node.String()+bits)

	// The tor must have all routes before the node starts, so that the
	// clock measures the node only.
	var goTor *passiveFeeder
	switch source {
	case birdFeeder:
		requireInstalled(b, "the BIRD feeder", "bird", "birdc")
		t0 := time.Now()
		torBird := harness.StartBird(b, tor, torBirdConfig(fam.torID.String(), []string{fam.node.String()}, prefixes))
		waitBirdRoutes(b, torBird, len(prefixes), 60*time.Second)
		b.Logf("%s: tor BIRD loaded %d static routes in %v", kind, len(prefixes), time.Since(t0).Round(time.Millisecond))
	case goFeeder:
		goTor = startPassiveFeeder(b, tor, fam.tor, fam.torID, feed)
	default:
		b.Fatalf("unknown feeder %q", source)
	}
	proto := kernelProto(kind)

	counter, closeCounter := newRouteCounter(b, node.NS, fam.shape, proto, len(prefixes))
	defer closeCounter()
	nl := counter.NL

	start := time.Now()
	d := startNode(b, lab, node, kind, nodeSpec{RouterID: fam.nodeID.String(), Peers: []string{fam.tor.String()}})
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
	all, err := nl.CountRoutesOf(fam.shape.AF, tableMain, proto, -1)
	if err != nil {
		b.Fatal(err)
	}
	t2 := time.Now()
	if _, err := counter.Total.Total(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: a netlink dump of the %d proto-%d routes takes %v, a fib_triestat/rt6_stats read %v",
		kind, all, proto, t2.Sub(t1).Round(time.Microsecond), time.Since(t2).Round(time.Microsecond))
	if all > len(prefixes) {
		b.Logf("%s: also installed: %s", kind, strings.TrimSpace(node.MustRun(b, "sh", "-c",
			fmt.Sprintf("ip %s route show table main proto %d | grep -v '/%d '", fam.ipFamily, proto, fam.shape.Bits))))
	}
	if goTor != nil {
		state, err := goTor.report(start)
		if err != nil {
			b.Fatalf("%s: feeder: %v", kind, err)
		}
		b.Logf("%s: go feeder (times from the node's start): %s", kind, state)
	}
	// Show one installed route, to make plain what was counted.
	sample := strings.TrimSpace(node.MustRun(b, "ip", fam.ipFamily, "route", "show", "table", "main", prefixes[len(prefixes)/2].String()))
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
