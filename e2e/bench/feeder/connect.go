package feeder

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Accept establishes a session on the next connection ln accepts. A
// connection whose handshake fails (a peer still starting up may close
// it) is dropped and the next one is awaited. Close ln to give up.
func (s Speaker) Accept(ln net.Listener) (*Session, error) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return nil, fmt.Errorf("feeder: accept on %v: %w", ln.Addr(), err)
		}
		if sess, err := s.Establish(conn); err == nil {
			return sess, nil
		}
	}
}

// Dial establishes a session over a connection from dial, trying again
// every retry until ctx ends: the peer may not listen yet, or may close
// connections from neighbours it has not configured yet. It returns the
// last error when ctx ends first.
//
// slots, if not nil, is shared by many dialing speakers and bounds how
// many attempts (connect and handshake) are under way at once: a daemon
// with a short listen backlog (BIRD's is 8) drops the SYNs of a larger
// crowd, and the kernel only resends them a second later.
func (s Speaker) Dial(ctx context.Context, dial func(context.Context) (net.Conn, error), retry time.Duration, slots chan struct{}) (*Session, error) {
	tick := time.NewTicker(retry)
	defer tick.Stop()
	for {
		sess, err := s.attempt(ctx, dial, slots)
		if err == nil {
			return sess, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("feeder: no session as %v: %w (last attempt: %v)", s.RouterID, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (s Speaker) attempt(ctx context.Context, dial func(context.Context) (net.Conn, error), slots chan struct{}) (*Session, error) {
	if slots != nil {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	conn, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	return s.Establish(conn)
}
