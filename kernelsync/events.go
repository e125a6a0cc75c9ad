package kernelsync

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vishvananda/netlink"
)

// Netlink events are bursty (our own 100k writes echo back); big channel
// and socket buffers keep the kernel from dropping them.
const (
	eventQueue    = 4096
	receiveBuffer = 32 << 20
)

type subscriptions struct {
	routes chan netlink.RouteUpdate
	links  chan netlink.LinkUpdate
	addrs  chan netlink.AddrUpdate
	// lost is closed when any subscription failed (ENOBUFS: events were
	// dropped); the loop then resubscribes and rescans.
	lost chan struct{}
	// cancel ends this generation of subscriptions.
	cancel context.CancelFunc
}

// subscribe opens route, link and address subscriptions in the current
// network namespace; they end with ctx or cancel. Route changes caused by
// the netlink socket ownPort (petrel's writer) are not reported.
func subscribe(ctx context.Context, log *slog.Logger, ownPort uint32) (*subscriptions, error) {
	ctx, cancel := context.WithCancel(ctx)
	s := &subscriptions{
		cancel: cancel,
		routes: make(chan netlink.RouteUpdate, eventQueue),
		links:  make(chan netlink.LinkUpdate, 1024),
		addrs:  make(chan netlink.AddrUpdate, 1024),
		lost:   make(chan struct{}),
	}
	var once sync.Once
	onError := func(err error) {
		log.Debug("netlink subscription", "err", err)
		once.Do(func() { close(s.lost) })
	}
	done := ctx.Done()
	if err := watchRoutes(ctx, ownPort, s.routes, onError); err != nil {
		cancel()
		return nil, fmt.Errorf("kernelsync: subscribe to routes: %w", err)
	}
	if err := netlink.LinkSubscribeWithOptions(s.links, done, netlink.LinkSubscribeOptions{ErrorCallback: onError}); err != nil {
		cancel()
		return nil, fmt.Errorf("kernelsync: subscribe to links: %w", err)
	}
	if err := netlink.AddrSubscribeWithOptions(s.addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onError}); err != nil {
		cancel()
		return nil, fmt.Errorf("kernelsync: subscribe to addresses: %w", err)
	}
	return s, nil
}
