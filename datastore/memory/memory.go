// Package memory is an in-process datastore.Backend for unit tests: the
// same contract as etcd and Kubernetes (revisions, compare-and-swap,
// watches that replay from a revision), no server.
package memory

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/petrel-net/petrel/datastore"
)

// historySize bounds the events kept for watches that start in the past;
// an older revision gets a closed channel, as after an etcd compaction.
const historySize = 4096

type stored struct {
	data []byte
	rev  int64
}

type record struct {
	rev   int64
	kind  datastore.Kind
	event datastore.Event
}

// Backend is safe for concurrent use.
type Backend struct {
	mu       sync.Mutex
	rev      int64
	objs     map[datastore.Kind]map[string]stored
	history  []record
	watchers map[*watcher]struct{}
}

type watcher struct {
	kind datastore.Kind
	ch   chan datastore.Event
}

// New returns an empty store.
func New() *Backend {
	return &Backend{objs: map[datastore.Kind]map[string]stored{}, watchers: map[*watcher]struct{}{}}
}

func (b *Backend) decode(kind datastore.Kind, s stored) datastore.Object {
	obj, _ := datastore.New(kind)
	_ = json.Unmarshal(s.data, obj)
	obj.SetResourceVersion(strconv.FormatInt(s.rev, 10))
	return obj
}

func (b *Backend) Get(_ context.Context, kind datastore.Kind, name string) (datastore.Object, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.objs[kind][name]
	if !ok {
		return nil, fmt.Errorf("%s %q: %w", kind, name, datastore.ErrNotFound)
	}
	return b.decode(kind, s), nil
}

func (b *Backend) List(_ context.Context, kind datastore.Kind) ([]datastore.Object, string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []datastore.Object
	for _, s := range b.objs[kind] {
		out = append(out, b.decode(kind, s))
	}
	return out, strconv.FormatInt(b.rev, 10), nil
}

func (b *Backend) Create(_ context.Context, obj datastore.Object) (datastore.Object, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objs[obj.Kind()][obj.GetName()]; ok {
		return nil, fmt.Errorf("%s %q: %w", obj.Kind(), obj.GetName(), datastore.ErrExists)
	}
	return b.put(obj, datastore.Added), nil
}

func (b *Backend) Update(_ context.Context, obj datastore.Object) (datastore.Object, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.objs[obj.Kind()][obj.GetName()]
	if !ok {
		return nil, fmt.Errorf("%s %q: %w", obj.Kind(), obj.GetName(), datastore.ErrNotFound)
	}
	if obj.GetResourceVersion() != strconv.FormatInt(s.rev, 10) {
		return nil, fmt.Errorf("%s %q at %q: %w", obj.Kind(), obj.GetName(), obj.GetResourceVersion(), datastore.ErrConflict)
	}
	return b.put(obj, datastore.Modified), nil
}

func (b *Backend) Delete(_ context.Context, kind datastore.Kind, name, rv string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.objs[kind][name]
	if !ok {
		return fmt.Errorf("%s %q: %w", kind, name, datastore.ErrNotFound)
	}
	if rv != "" && rv != strconv.FormatInt(s.rev, 10) {
		return fmt.Errorf("%s %q at %q: %w", kind, name, rv, datastore.ErrConflict)
	}
	last := b.decode(kind, s)
	delete(b.objs[kind], name)
	b.rev++
	last.SetResourceVersion(strconv.FormatInt(b.rev, 10))
	b.publish(kind, datastore.Event{Type: datastore.Deleted, Object: last})
	return nil
}

// put stores obj at a new revision and publishes the event; mu is held.
func (b *Backend) put(obj datastore.Object, typ datastore.EventType) datastore.Object {
	b.rev++
	c := datastore.Clone(obj)
	c.SetResourceVersion("")
	data, _ := json.Marshal(c)
	if b.objs[obj.Kind()] == nil {
		b.objs[obj.Kind()] = map[string]stored{}
	}
	s := stored{data: data, rev: b.rev}
	b.objs[obj.Kind()][obj.GetName()] = s
	out := b.decode(obj.Kind(), s)
	b.publish(obj.Kind(), datastore.Event{Type: typ, Object: out})
	return b.decode(obj.Kind(), s)
}

func (b *Backend) publish(kind datastore.Kind, ev datastore.Event) {
	b.history = append(b.history, record{rev: b.rev, kind: kind, event: ev})
	if len(b.history) > historySize {
		b.history = b.history[len(b.history)-historySize:]
	}
	for w := range b.watchers {
		if w.kind == kind {
			b.send(w, ev)
		}
	}
}

// send never blocks the writer: a watcher that falls behind is closed and
// must re-list, as a slow etcd watcher would be.
func (b *Backend) send(w *watcher, ev datastore.Event) {
	select {
	case w.ch <- ev:
	default:
		delete(b.watchers, w)
		close(w.ch)
	}
}

func (b *Backend) Watch(ctx context.Context, kind datastore.Kind, revision string) (<-chan datastore.Event, error) {
	from, err := strconv.ParseInt(revision, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("watch %s: revision %q: %w", kind, revision, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	w := &watcher{kind: kind, ch: make(chan datastore.Event, 1024)}
	if len(b.history) > 0 && from < b.history[0].rev-1 {
		close(w.ch) // compacted: re-list
		return w.ch, nil
	}
	b.watchers[w] = struct{}{}
	for _, r := range b.history {
		if _, open := b.watchers[w]; !open {
			break // overflowed during the replay: closed, the caller re-lists
		}
		if r.rev > from && r.kind == kind {
			b.send(w, r.event)
		}
	}
	go func() {
		<-ctx.Done()
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.watchers[w]; ok {
			delete(b.watchers, w)
			close(w.ch)
		}
	}()
	return w.ch, nil
}

func (b *Backend) Close() error { return nil }

var _ datastore.Backend = (*Backend)(nil)
