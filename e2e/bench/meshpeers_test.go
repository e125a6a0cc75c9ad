package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/bench/feeder"
)

const (
	// meshHandshakeSlots bounds the simulated neighbours' connection
	// attempts under way at once (see feeder.Speaker.Dial): BIRD's listen
	// backlog is 8.
	meshHandshakeSlots = 8
	// meshRetry is how soon a neighbour tries again after a refused or
	// closed attempt (a daemon that has not configured that peer yet).
	meshRetry = 100 * time.Millisecond
)

// meshPeers is many simulated iBGP neighbours of one node, all in one
// namespace with an address each: every one dials the node from its own
// address, sends its feed (one block, next hop itself) once established,
// and then counts what the node sends it (a route reflector's reflected
// routes). A neighbour whose session drops dials again, as a real speaker
// would; the drops are counted and reported.
type meshPeers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions []*feeder.Session // by neighbour: the latest; nil until established
	lastUp   time.Time
	drops    int
	lastDrop error
	failed   error
}

// startMeshPeers starts one dialing feeder.Speaker per address in namespace
// ns, towards node:179 in namespace nodeNS, each sending feeds[i]. They
// dial once the node listens. The benchmark's cleanup stops them.
func startMeshPeers(b *testing.B, ns, nodeNS string, node netip.Addr, addrs []netip.Addr, feeds []*feeder.Feed) *meshPeers {
	ctx, cancel := context.WithCancel(context.Background())
	p := &meshPeers{cancel: cancel, sessions: make([]*feeder.Session, len(addrs))}
	slots := make(chan struct{}, meshHandshakeSlots)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := waitListening(ctx, nodeNS, bgpPort); err != nil {
			p.fail(err)
			return
		}
		for i, a := range addrs {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.run(ctx, i, feeder.Speaker{AS: benchAS, RouterID: a}, dialerIn(ns, a, node), feeds[i], slots)
			}()
		}
	}()
	b.Cleanup(p.stop)
	return p
}

// run is neighbour i: establish, send, hold the session; again after a drop.
func (p *meshPeers) run(ctx context.Context, i int, s feeder.Speaker, dial func(context.Context) (net.Conn, error), feed *feeder.Feed, slots chan struct{}) {
	for {
		sess, err := s.Dial(ctx, dial, meshRetry, slots)
		if err != nil {
			if ctx.Err() == nil {
				p.fail(err)
			}
			return
		}
		p.mu.Lock()
		p.sessions[i], p.lastUp = sess, time.Now()
		p.mu.Unlock()
		if err = sess.Send(feed.Stream()); err == nil {
			select {
			case <-sess.Done():
				err = sess.Err()
			case <-ctx.Done():
				return
			}
		}
		sess.Close()
		p.mu.Lock()
		p.drops++
		p.lastDrop = err
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(meshRetry):
		}
	}
}

func (p *meshPeers) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed == nil {
		p.failed = err
	}
}

func (p *meshPeers) stop() {
	p.cancel()
	p.wg.Wait()
	for _, s := range p.sessions {
		if s != nil {
			s.Close()
		}
	}
}

// Err reports a neighbour that gave up (it only does when stopped).
func (p *meshPeers) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed
}

// dropped returns how many established sessions have dropped so far, and
// the last one's error.
func (p *meshPeers) dropped() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.drops, p.lastDrop
}

// established returns how many sessions are up, and when the last came up.
func (p *meshPeers) established() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.sessions {
		if s != nil && s.Err() == nil {
			n++
		}
	}
	return n, p.lastUp
}

// reflectedTo returns how many neighbours have received at least want
// distinct prefixes from the node.
func (p *meshPeers) reflectedTo(want int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, s := range p.sessions {
		if s == nil {
			continue
		}
		if got, _ := s.Received(); got >= want {
			n++
		}
	}
	return n
}

// waitListening polls the namespace's TCP socket tables until something
// listens on port (IPv4 or IPv6 wildcard), every 10 ms.
func waitListening(ctx context.Context, ns string, port uint16) error {
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	err := inNetns(ns, func() error {
		for _, name := range []string{"tcp", "tcp6"} {
			f, err := os.Open("/proc/thread-self/net/" + name)
			if err != nil {
				return err
			}
			files = append(files, f)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// "  0: 00000000:00B3 00000000:0000 0A ..." (local address, remote, state)
	want := fmt.Sprintf(":%04X", port)
	buf := make([]byte, 256<<10)
	for {
		for _, f := range files {
			n, err := f.ReadAt(buf, 0)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			for line := range strings.SplitSeq(string(buf[:n]), "\n") {
				if f := strings.Fields(line); len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
