package datastore

import (
	"context"
	"log/slog"
	"maps"
	"time"
)

// Snapshot is every object of one kind, by name.
type Snapshot map[string]Object

// Skipped is every object of one kind that cannot be decoded, by name:
// left out of the Snapshot, to be reported.
type Skipped map[string]*DecodeError

// Follow keeps a snapshot of one kind current and hands a copy to onChange
// after the first full list and after every change, with the objects that
// cannot be decoded: those are left out, so one bad object never stops
// the others from being followed. When the watch ends (an outage, a
// compaction) it lists again with backoff; meanwhile the last snapshot
// stands, so an unreachable store never looks like an empty one. Events
// that arrive together are applied together: one copy, one onChange per
// burst, not per event. It returns when ctx ends.
func Follow(ctx context.Context, b Backend, kind Kind, log *slog.Logger, onChange func(Snapshot, Skipped)) {
	backoff := minFollowBackoff
	retry := func() { // after a failure: wait, and wait longer next time
		sleep(ctx, backoff)
		backoff = min(2*backoff, maxFollowBackoff)
	}
	var snap Snapshot
	var skipped Skipped
	changed := func() { onChange(maps.Clone(snap), maps.Clone(skipped)) }
	for ctx.Err() == nil {
		objs, rev, err := b.List(ctx, kind)
		bad, partial := skippedByName(err)
		if err != nil && !partial {
			log.Warn("datastore list failed; keeping the last state and retrying", "kind", kind, "err", err, "retry", backoff)
			retry()
			continue
		}
		next := Snapshot{}
		for _, o := range objs {
			next[o.GetName()] = o
		}
		if snap == nil || !sameVersions(snap, next) || !sameErrors(skipped, bad) {
			snap, skipped = next, bad
			changed()
		}
		events, err := b.Watch(ctx, kind, rev)
		if err != nil {
			log.Warn("datastore watch failed; retrying", "kind", kind, "err", err, "retry", backoff)
			retry()
			continue
		}
		started, delivered := time.Now(), false
		for ev := range events {
			apply(snap, skipped, ev)
			applyQueued(snap, skipped, events)
			changed()
			delivered = true
		}
		if ctx.Err() != nil {
			return
		}
		// A watch that worked for a while is re-established at once; one
		// that keeps ending straight away backs off like a failure.
		if delivered || time.Since(started) >= healthyWatch {
			backoff = minFollowBackoff
			log.Info("datastore watch ended; re-listing", "kind", kind)
			continue
		}
		log.Warn("datastore watch ended at once; re-listing after a pause", "kind", kind, "retry", backoff)
		retry()
	}
}

const (
	minFollowBackoff = 100 * time.Millisecond
	maxFollowBackoff = 5 * time.Second
	// healthyWatch is how long a watch must last, without delivering
	// anything, for its end not to count as a failure.
	healthyWatch = 5 * time.Second
)

// applyQueued applies the events already waiting on events, without
// blocking: a burst becomes one change.
func applyQueued(snap Snapshot, skipped Skipped, events <-chan Event) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			apply(snap, skipped, ev)
		default:
			return
		}
	}
}

// apply records one watch event in snap and skipped.
func apply(snap Snapshot, skipped Skipped, ev Event) {
	name := ev.Object.GetName()
	delete(snap, name)
	delete(skipped, name)
	switch {
	case ev.Type == Deleted:
	case ev.Err != nil:
		skipped[name] = ev.Err
	default:
		snap[name] = ev.Object
	}
}

// skippedByName returns the objects a partial List left out (an empty
// set after a complete one), and whether the List was partial.
func skippedByName(err error) (Skipped, bool) {
	objs, partial := SkippedObjects(err)
	out := make(Skipped, len(objs))
	for _, o := range objs {
		out[o.Name] = o
	}
	return out, partial
}

func sameVersions(a, b Snapshot) bool {
	return maps.EqualFunc(a, b, func(x, y Object) bool { return x.GetResourceVersion() == y.GetResourceVersion() })
}

func sameErrors(a, b Skipped) bool {
	return maps.EqualFunc(a, b, func(x, y *DecodeError) bool { return x.Error() == y.Error() })
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
