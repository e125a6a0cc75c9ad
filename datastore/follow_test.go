package datastore_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/memory"
)

// scriptedWatch is a memory store whose Watch is replaced by watch and,
// when listErr is set, whose List fails with it. It records when each
// attempt (List when it fails, else Watch) was made.
type scriptedWatch struct {
	datastore.Backend
	watches  atomic.Int32
	watch    func(ctx context.Context) (<-chan datastore.Event, error)
	listErr  error
	mu       sync.Mutex
	attempts []time.Time
}

func (s *scriptedWatch) attempt() {
	s.mu.Lock()
	s.attempts = append(s.attempts, time.Now())
	s.mu.Unlock()
}

func (s *scriptedWatch) List(ctx context.Context, kind datastore.Kind) ([]datastore.Object, string, error) {
	if s.listErr != nil {
		s.attempt()
		return nil, "", s.listErr
	}
	return s.Backend.List(ctx, kind)
}

func (s *scriptedWatch) Watch(ctx context.Context, _ datastore.Kind, _ string) (<-chan datastore.Event, error) {
	s.watches.Add(1)
	s.attempt()
	return s.watch(ctx)
}

func follow(t *testing.T, b datastore.Backend, d time.Duration, onChange func(datastore.Snapshot)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	datastore.Follow(ctx, b, datastore.KindIPPool, slog.New(slog.NewTextHandler(io.Discard, nil)),
		func(s datastore.Snapshot, _ datastore.Skipped) { onChange(s) })
}

// A list or watch that fails, or a watch that ends as soon as it starts,
// is retried after a pause that doubles each time (100 ms, 200 ms,
// 400 ms, 800 ms...), not every 100 ms.
func TestFollowBacksOffWhenTheWatchKeepsFailing(t *testing.T) {
	closed := make(chan datastore.Event)
	close(closed)
	refused := func(context.Context) (<-chan datastore.Event, error) { return nil, errors.New("watch refused") }
	for name, b := range map[string]*scriptedWatch{
		"list fails":   {watch: refused, listErr: errors.New("connection refused")},
		"watch fails":  {watch: refused},
		"ends at once": {watch: func(context.Context) (<-chan datastore.Event, error) { return closed, nil }},
	} {
		t.Run(name, func(t *testing.T) {
			b.Backend = memory.New()
			follow(t, b, 1600*time.Millisecond, func(datastore.Snapshot) {})
			// 0, 0.1, 0.3, 0.7, 1.5 s: 5 with backoff, ~16 without.
			if n := len(b.attempts); n > 6 || n < 3 {
				t.Errorf("%d attempts in 1.6 s, want 3-6 (backoff)", n)
			}
			// A pause never ends early, so these hold on a loaded machine.
			for i := 1; i < len(b.attempts); i++ {
				gap, want := b.attempts[i].Sub(b.attempts[i-1]), 100*time.Millisecond<<(i-1)
				if gap < want*9/10 {
					t.Errorf("pause %d: %v, want at least %v (doubling)", i, gap, want)
				}
			}
		})
	}
}

// A burst of events already queued costs one snapshot copy, not one per
// event.
func TestFollowAppliesABurstAsOneChange(t *testing.T) {
	const n = 1000
	burst := func(ctx context.Context) (<-chan datastore.Event, error) {
		events := make(chan datastore.Event, n)
		for i := range n {
			o, _ := datastore.New(datastore.KindIPPool)
			o.(*datastore.IPPool).Name = fmt.Sprintf("pool-%d", i)
			events <- datastore.Event{Type: datastore.Added, Object: o}
		}
		go func() { // as a backend does: the watch ends with ctx
			<-ctx.Done()
			close(events)
		}()
		return events, nil
	}
	b := &scriptedWatch{Backend: memory.New(), watch: burst}
	var mu sync.Mutex
	var calls, last int
	follow(t, b, 500*time.Millisecond, func(s datastore.Snapshot) {
		mu.Lock()
		calls, last = calls+1, len(s)
		mu.Unlock()
	})
	if last != n {
		t.Fatalf("last snapshot has %d objects, want %d", last, n)
	}
	if calls > 3 { // the first list, then the burst
		t.Errorf("%d changes for one list and one burst of %d events, want 2", calls, n)
	}
}
