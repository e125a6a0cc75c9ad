package datastore

import (
	"context"
	"log/slog"
	"maps"
	"time"
)

// Snapshot is every object of one kind, by name.
type Snapshot map[string]Object

// Follow keeps a snapshot of one kind current and hands a copy to onChange
// after the first full list and after every change. When the watch ends
// (an outage, a compaction) it lists again with backoff; meanwhile the
// last snapshot stands, so an unreachable store never looks like an empty
// one. It returns when ctx ends.
func Follow(ctx context.Context, b Backend, kind Kind, log *slog.Logger, onChange func(Snapshot)) {
	backoff := 100 * time.Millisecond
	var snap Snapshot
	for ctx.Err() == nil {
		objs, rev, err := b.List(ctx, kind)
		if err != nil {
			log.Warn("datastore list failed; keeping the last state and retrying", "kind", kind, "err", err, "retry", backoff)
			sleep(ctx, backoff)
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		next := Snapshot{}
		for _, o := range objs {
			next[o.GetName()] = o
		}
		if snap == nil || !sameVersions(snap, next) {
			snap = next
			onChange(maps.Clone(snap))
		}
		events, err := b.Watch(ctx, kind, rev)
		if err != nil {
			log.Warn("datastore watch failed; retrying", "kind", kind, "err", err)
			sleep(ctx, backoff)
			continue
		}
		backoff = 100 * time.Millisecond
		for ev := range events {
			if ev.Type == Deleted {
				delete(snap, ev.Object.GetName())
			} else {
				snap[ev.Object.GetName()] = ev.Object
			}
			onChange(maps.Clone(snap))
		}
		if ctx.Err() == nil {
			log.Info("datastore watch ended; re-listing", "kind", kind)
		}
	}
}

func sameVersions(a, b Snapshot) bool {
	return maps.EqualFunc(a, b, func(x, y Object) bool { return x.GetResourceVersion() == y.GetResourceVersion() })
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
