package nlretry

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

// interruptedFor returns a dump that is interrupted n times, with partial
// results, and then succeeds; calls counts its calls.
func interruptedFor(n int, calls *int) func() ([]int, error) {
	return func() ([]int, error) {
		*calls++
		if *calls <= n {
			return []int{1}, fmt.Errorf("list addresses: %w", netlink.ErrDumpInterrupted)
		}
		return []int{1, 2, 3}, nil
	}
}

func TestDump(t *testing.T) {
	other := errors.New("permission denied")
	tests := []struct {
		name        string
		dump        func(calls *int) func() ([]int, error)
		wantCalls   int
		wantLen     int
		wantErr     error
		interrupted bool
	}{
		{name: "clean dump is read once", dump: func(c *int) func() ([]int, error) { return interruptedFor(0, c) }, wantCalls: 1, wantLen: 3},
		{name: "interrupted dumps are read again", dump: func(c *int) func() ([]int, error) { return interruptedFor(Attempts-1, c) }, wantCalls: Attempts, wantLen: 3},
		{
			name: "gives up after Attempts with the partial result", dump: func(c *int) func() ([]int, error) { return interruptedFor(100, c) },
			wantCalls: Attempts, wantLen: 1, wantErr: netlink.ErrDumpInterrupted, interrupted: true,
		},
		{
			name: "other errors are not retried",
			dump: func(c *int) func() ([]int, error) {
				return func() ([]int, error) { *c++; return nil, other }
			},
			wantCalls: 1, wantErr: other,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := Dump(tt.dump(&calls))
			if calls != tt.wantCalls {
				t.Errorf("dump called %d times, want %d", calls, tt.wantCalls)
			}
			if len(got) != tt.wantLen {
				t.Errorf("got %v, want %d entries", got, tt.wantLen)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if Interrupted(err) != tt.interrupted {
				t.Errorf("Interrupted(%v) = %v, want %v", err, Interrupted(err), tt.interrupted)
			}
		})
	}
}

func TestDo(t *testing.T) {
	calls := 0
	dump := interruptedFor(2, &calls)
	err := Do(func() error { _, err := dump(); return err })
	if err != nil || calls != 3 {
		t.Fatalf("Do = %v after %d calls, want nil after 3", err, calls)
	}
}
