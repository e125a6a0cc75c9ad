// Package nlretry retries netlink dumps that the kernel interrupted.
//
// When a table changes while the kernel is dumping it (links, addresses,
// routes or neighbours churning under thousands of pod veths), netlink sets
// NLM_F_DUMP_INTR and vishvananda/netlink returns ErrDumpInterrupted along
// with partial results. That is a reason to read again, never a reason to
// stop: every petrel dump goes through Dump or Do. The package owns no state
// and touches no kernel object itself.
package nlretry

import (
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

// Attempts bounds how often one dump is tried; with Backoff doubling from
// 5 ms the last try starts about 75 ms after the first.
const (
	Attempts = 5
	Backoff  = 5 * time.Millisecond
)

// Dump calls dump until it is not interrupted, at most Attempts times, with
// a short doubling pause in between. If every attempt was interrupted it
// returns the last (partial) result and an error that still matches
// netlink.ErrDumpInterrupted: the caller logs it and tries at its next scan.
func Dump[T any](dump func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	pause := Backoff
	for attempt := 1; ; attempt++ {
		v, err = dump()
		if !Interrupted(err) {
			return v, err
		}
		if attempt == Attempts {
			return v, fmt.Errorf("netlink dump interrupted %d times in a row: %w", Attempts, err)
		}
		time.Sleep(pause)
		pause *= 2
	}
}

// Do is Dump for a function that consumes the dump itself (an ...Iter walk,
// or a whole scan that only commits its result when every dump succeeded).
func Do(f func() error) error {
	_, err := Dump(func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// Interrupted reports whether err says a dump was interrupted.
func Interrupted(err error) bool { return errors.Is(err, netlink.ErrDumpInterrupted) }
