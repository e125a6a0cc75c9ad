package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"

	"github.com/petrel-net/petrel/e2e/bench/feeder"
	"github.com/petrel-net/petrel/e2e/harness"
)

// bgpPort is where every speaker of a lab listens.
const bgpPort = 179

// The ToR route sources of the ingest benchmark.
const (
	// birdFeeder is a BIRD 2 with the routes as statics. Not polled, it
	// holds back its last UPDATE and End-of-RIB until its idle timeout, so
	// the tail of an ingest may be BIRD's, not the node's.
	birdFeeder = "bird-feeder"
	// goFeeder is package feeder: UPDATEs encoded before the node starts,
	// written as fast as the socket takes them, End-of-RIB right after.
	goFeeder = "go-feeder"
)

var ingestFeeders = []string{birdFeeder, goFeeder}

// listenIn opens a TCP listener on addr:179 inside namespace ns. The
// socket stays in that namespace whichever goroutine uses it later.
func listenIn(ns string, addr netip.Addr) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, bgpPort).String())
		return err
	})
	return ln, err
}

// dialerIn returns a dial function for feeder.Speaker.Dial that connects
// from local to remote:179, with the socket created inside namespace ns.
func dialerIn(ns string, local, remote netip.Addr) func(context.Context) (net.Conn, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), Timeout: 2 * time.Second}
	to := netip.AddrPortFrom(remote, bgpPort).String()
	return func(ctx context.Context) (conn net.Conn, err error) {
		err = inNetns(ns, func() (err error) {
			conn, err = d.DialContext(ctx, "tcp", to)
			return err
		})
		return conn, err
	}
}

// passiveFeeder is a feeder.Speaker waiting in a lab namespace for the
// node to connect, then sending its feed at once. Its goroutine owns the
// session; the fields are read through report once the benchmark is done.
type passiveFeeder struct {
	ln   net.Listener
	feed *feeder.Feed

	mu         sync.Mutex
	sess       *feeder.Session
	up, sent   time.Time // session established; whole feed written
	err        error
	stopped    bool
	loopExited chan struct{}
}

// startPassiveFeeder listens on addr:179 in n's namespace as router
// routerID, with sessions of addr's family, and sends feed to the first
// peer that establishes a session. The lab's cleanup stops it.
func startPassiveFeeder(b *testing.B, n *harness.Node, addr, routerID netip.Addr, feed *feeder.Feed) *passiveFeeder {
	b.Helper()
	ln, err := listenIn(n.NS, addr)
	if err != nil {
		b.Fatal(err)
	}
	f := &passiveFeeder{ln: ln, feed: feed, loopExited: make(chan struct{})}
	speaker := feeder.Speaker{AS: benchAS, RouterID: routerID}
	if addr.Is6() {
		speaker.Family = bgp.RF_IPv6_UC
	}
	go func() {
		defer close(f.loopExited)
		sess, err := speaker.Accept(ln)
		f.mu.Lock()
		f.sess, f.up, f.err = sess, time.Now(), err
		if err == nil && f.stopped {
			sess.Close() // stop came during the handshake
		}
		f.mu.Unlock()
		if err != nil {
			return
		}
		err = sess.Send(feed.Stream())
		f.mu.Lock()
		f.sent, f.err = time.Now(), err
		f.mu.Unlock()
	}()
	b.Cleanup(f.stop)
	return f
}

func (f *passiveFeeder) stop() {
	f.ln.Close()
	f.mu.Lock()
	f.stopped = true
	sess := f.sess
	f.mu.Unlock()
	if sess != nil {
		sess.Close()
	}
	<-f.loopExited
}

// report describes the feeder's session relative to start, and fails if
// the session is not up any more.
func (f *passiveFeeder) report(start time.Time) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	if f.sess == nil {
		return "", fmt.Errorf("feeder: no session")
	}
	if err := f.sess.Err(); err != nil {
		return "", err
	}
	written := "still writing"
	if !f.sent.IsZero() {
		written = "all written at +" + f.sent.Sub(start).Round(time.Millisecond).String()
	}
	return fmt.Sprintf("session up at +%v, %d UPDATEs (%d bytes) %s",
		f.up.Sub(start).Round(time.Millisecond), len(f.feed.Messages), len(f.feed.Stream()), written), nil
}
