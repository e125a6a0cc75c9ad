package coalesce

import (
	"sync"
	"testing"
)

func TestQueueKeepsLatestPerKeyInFirstSeenOrder(t *testing.T) {
	q := New[string, int]()
	q.Put("a", 1)
	q.Put("b", 2)
	q.Put("a", 3)
	select {
	case <-q.Ready():
	default:
		t.Fatal("Ready not signalled after Put")
	}
	var keys []string
	var vals []int
	n := q.Drain(func(k string, v int) { keys = append(keys, k); vals = append(vals, v) })
	if n != 2 || keys[0] != "a" || keys[1] != "b" || vals[0] != 3 || vals[1] != 2 {
		t.Fatalf("drained %d %v %v, want [a b] [3 2]", n, keys, vals)
	}
	if q.Len() != 0 {
		t.Fatalf("Len after Drain = %d", q.Len())
	}
}

func TestQueueCloseWakesAndDropsLaterPuts(t *testing.T) {
	q := New[int, int]()
	q.Close()
	q.Close() // idempotent
	q.Put(1, 1)
	if _, ok := <-q.Ready(); ok {
		t.Fatal("Ready should be closed")
	}
	if q.Len() != 0 {
		t.Fatal("Put after Close must be dropped")
	}
}

func TestQueueConcurrentProducersLoseNoKey(t *testing.T) {
	q := New[int, int]()
	var wg sync.WaitGroup
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				q.Put(p*1000+i, i)
			}
		}(p)
	}
	seen := map[int]bool{}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for finished := false; !finished; {
		select {
		case <-q.Ready():
		case <-done:
			finished = true
		}
		q.Drain(func(k, _ int) { seen[k] = true })
	}
	q.Drain(func(k, _ int) { seen[k] = true })
	if len(seen) != 4000 {
		t.Fatalf("saw %d keys, want 4000", len(seen))
	}
}

func TestQueueMergeFoldsIntoPending(t *testing.T) {
	q := New[string, []int]()
	add := func(v int) func([]int, bool) []int {
		return func(old []int, _ bool) []int { return append(old, v) }
	}
	q.Merge("k", add(1))
	q.Merge("k", add(2))
	var got []int
	q.Drain(func(_ string, v []int) { got = v })
	if len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("merged %v, want [1 2]", got)
	}
	q.Merge("k", add(3))
	q.Drain(func(_ string, v []int) { got = v })
	if len(got) != 1 || got[0] != 3 {
		t.Fatalf("after drain merged %v, want [3]", got)
	}
}

// Drained buffers are reused: nothing of an earlier drain may show up in a
// later one.
func TestQueueReusedBuffersStartEmpty(t *testing.T) {
	q := New[int, int]()
	for round := 0; round < 3; round++ {
		q.Put(round, round)
		q.Put(100+round, round)
		got := map[int]int{}
		q.Drain(func(k, v int) { got[k] = v })
		if len(got) != 2 || got[round] != round || got[100+round] != round {
			t.Fatalf("round %d drained %v", round, got)
		}
	}
}
