// Package coalesce provides a keyed queue that keeps only the latest value per
// key until the consumer drains it.
//
// Producers never block and memory is bounded by the number of distinct keys,
// so a slow consumer (a kernel writer, a gRPC stream) can never throttle the
// producer (the BGP event loop) or grow an unbounded backlog: a burst of
// updates to one prefix collapses into one.
package coalesce

import "sync"

// Queue is safe for concurrent use by many producers and one consumer.
type Queue[K comparable, V any] struct {
	mu      sync.Mutex
	pending map[K]V
	order   []K // first-seen order, so consumers see keys roughly in arrival order
	// spare and spareOrder are the buffers the last Drain handed out,
	// emptied: the next Drain swaps them in instead of allocating and
	// regrowing a map. Only buffers up to spareMax keys are kept: a map
	// never shrinks, and one that held a 100k-route burst is megabytes.
	spare      map[K]V
	spareOrder []K
	ready      chan struct{}
	closed     bool
}

// spareMax bounds the drained buffers a queue keeps for reuse.
const spareMax = 4096

// New returns an empty queue.
func New[K comparable, V any]() *Queue[K, V] {
	return &Queue[K, V]{pending: make(map[K]V), ready: make(chan struct{}, 1)}
}

// Put records v as the latest value for k and wakes the consumer.
// It is a no-op after Close.
func (q *Queue[K, V]) Put(k K, v V) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.setLocked(k, v) // not through Merge: a closure per Put is garbage on the hot path
}

// Merge sets k's pending value to fn(old, hadOld), so a producer can fold a
// new event into one the consumer has not seen yet (a flag that must not be
// overwritten, say). It is a no-op after Close.
func (q *Queue[K, V]) Merge(k K, fn func(old V, hadOld bool) V) {
	q.mu.Lock()
	defer q.mu.Unlock()
	old, had := q.pending[k]
	q.setLocked(k, fn(old, had))
}

// setLocked records v for k, keeps k's first-seen place and wakes the
// consumer.
func (q *Queue[K, V]) setLocked(k K, v V) {
	if q.closed {
		return
	}
	if _, had := q.pending[k]; !had {
		q.order = append(q.order, k)
	}
	q.pending[k] = v
	q.wakeLocked()
}

// Ready is signalled (at most one token) whenever the queue has become
// non-empty since the last Drain, and closed by Close.
func (q *Queue[K, V]) Ready() <-chan struct{} { return q.ready }

// Drain removes and returns every pending key with its latest value, in
// first-seen order. fn is called without the lock held.
func (q *Queue[K, V]) Drain(fn func(K, V)) int {
	q.mu.Lock()
	pending, order := q.pending, q.order
	if q.spare == nil {
		q.spare = make(map[K]V)
	}
	q.pending, q.order = q.spare, q.spareOrder
	q.spare, q.spareOrder = nil, nil
	q.mu.Unlock()
	for _, k := range order {
		fn(k, pending[k])
	}
	if len(order) <= spareMax {
		clear(pending)
		clear(order) // drop references held by keys
		q.mu.Lock()
		q.spare, q.spareOrder = pending, order[:0]
		q.mu.Unlock()
	}
	return len(order)
}

// Len is the number of keys waiting.
func (q *Queue[K, V]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.order)
}

// Close wakes the consumer for good; later Puts are dropped.
func (q *Queue[K, V]) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ready)
	}
}

// wakeLocked must run under mu so it never sends on a channel Close closed.
func (q *Queue[K, V]) wakeLocked() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}
