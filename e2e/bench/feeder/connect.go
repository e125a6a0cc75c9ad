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
func (s Speaker) Dial(ctx context.Context, dial func(context.Context) (net.Conn, error), retry time.Duration) (*Session, error) {
	tick := time.NewTicker(retry)
	defer tick.Stop()
	for {
		conn, err := dial(ctx)
		if err == nil {
			var sess *Session
			if sess, err = s.Establish(conn); err == nil {
				return sess, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("feeder: no session as %v: %w (last attempt: %v)", s.RouterID, ctx.Err(), err)
		case <-tick.C:
		}
	}
}
