package daemon

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/ipam"
)

// watchedKinds are the resources that decide the peer set and what may be
// advertised.
var watchedKinds = []datastore.Kind{
	datastore.KindNode, datastore.KindBGPPeer, datastore.KindBGPConfiguration, datastore.KindBFDConfiguration, datastore.KindBGPFilter,
	datastore.KindIPPool, datastore.KindIPAMBlock, datastore.KindBlockAffinity,
}

// storeState holds the latest snapshot of each watched kind. It only
// stores: what the node should do with them is computed in desired.go.
type storeState struct {
	mu    sync.Mutex
	snaps map[datastore.Kind]datastore.Snapshot
	// skipped are the objects of each kind that cannot be decoded: left
	// out of snaps, shown in status and metrics.
	skipped map[datastore.Kind]datastore.Skipped
	// invalidPools are IPPools that decode but fail validation (a CIDR
	// that is not one): left out of snaps, so that nothing half-reads
	// them, and shown in status.
	invalidPools map[string]error
	changed      chan struct{} // one token: something changed since the last read
}

func newStoreState(ctx context.Context, b datastore.Backend, log *slog.Logger) *storeState {
	st := &storeState{snaps: map[datastore.Kind]datastore.Snapshot{}, skipped: map[datastore.Kind]datastore.Skipped{}, changed: make(chan struct{}, 1)}
	for _, kind := range watchedKinds {
		go datastore.Follow(ctx, b, kind, log.With("component", "datastore"), func(s datastore.Snapshot, bad datastore.Skipped) {
			st.store(kind, s, bad)
		})
	}
	return st
}

// store records a kind's new snapshot and wakes the reconcile loop.
func (st *storeState) store(kind datastore.Kind, s datastore.Snapshot, bad datastore.Skipped) {
	var invalid map[string]error
	if kind == datastore.KindIPPool {
		s, invalid = validPools(s)
	}
	st.mu.Lock()
	st.snaps[kind] = s
	st.skipped[kind] = bad
	if kind == datastore.KindIPPool {
		st.invalidPools = invalid
	}
	st.mu.Unlock()
	st.poke()
}

// poke makes the node recompute what it should do: the datastore changed,
// or something it depends on (a Secret).
func (st *storeState) poke() {
	select {
	case st.changed <- struct{}{}:
	default:
	}
}

// validPools splits a snapshot of IPPools into the valid ones and the
// validation errors of the others, by name.
func validPools(s datastore.Snapshot) (datastore.Snapshot, map[string]error) {
	valid := make(datastore.Snapshot, len(s))
	invalid := map[string]error{}
	for name, o := range s {
		if err := o.Validate(); err != nil {
			invalid[name] = err
			continue
		}
		valid[name] = o
	}
	return valid, invalid
}

// optionalKinds need not be listed before the node starts: open-source
// Calico's CRDs have no BFDConfiguration (BFD then runs on petrel's
// default timers), and before 3.25 no BGPFilter (a BGPPeer that names one
// is skipped until it can be read). The list is retried, and used once it
// works.
var optionalKinds = map[datastore.Kind]bool{datastore.KindBFDConfiguration: true, datastore.KindBGPFilter: true}

// waitSynced waits until every kind but the optional ones has been listed
// once.
func (st *storeState) waitSynced(ctx context.Context) error {
	for {
		st.mu.Lock()
		n := 0
		for kind := range st.snaps {
			if !optionalKinds[kind] {
				n++
			}
		}
		st.mu.Unlock()
		if n == len(watchedKinds)-len(optionalKinds) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-st.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// read returns one consistent view of every watched kind.
func (st *storeState) read() snapshot {
	st.mu.Lock()
	defer st.mu.Unlock()
	return snapshotOf(st.snaps, st.leftOutLocked())
}

// snapshotOf types the watched kinds' objects (IPPools already
// validated): the daemon's view, and dry-run's.
func snapshotOf(snaps map[datastore.Kind]datastore.Snapshot, leftOut []string) snapshot {
	return snapshot{
		Nodes:      typed[*datastore.Node](snaps[datastore.KindNode]),
		Peers:      typed[*datastore.BGPPeer](snaps[datastore.KindBGPPeer]),
		Configs:    typed[*datastore.BGPConfiguration](snaps[datastore.KindBGPConfiguration]),
		BFDConfigs: typed[*datastore.BFDConfiguration](snaps[datastore.KindBFDConfiguration]),
		Filters:    typed[*datastore.BGPFilter](snaps[datastore.KindBGPFilter]),
		Pools:      typed[*datastore.IPPool](snaps[datastore.KindIPPool]),
		Blocks:     typed[*datastore.IPAMBlock](snaps[datastore.KindIPAMBlock]),
		Affinities: typed[*datastore.BlockAffinity](snaps[datastore.KindBlockAffinity]),
		LeftOut:    leftOut,
	}
}

// typed lists a snapshot's objects sorted by name (nil when empty).
func typed[T datastore.Object](s datastore.Snapshot) []T {
	var out []T
	for _, o := range sorted(s) {
		out = append(out, o.(T))
	}
	return out
}

// leftOutLocked lists the objects left out because they cannot be decoded
// or are invalid IPPools, each naming its kind, name and field, in a
// stable order.
func (st *storeState) leftOutLocked() []string {
	var out []string
	for _, kind := range watchedKinds {
		for _, name := range slices.Sorted(maps.Keys(st.skipped[kind])) {
			out = append(out, st.skipped[kind][name].Error())
		}
	}
	for _, name := range slices.Sorted(maps.Keys(st.invalidPools)) {
		out = append(out, st.invalidPools[name].Error()+"; pool ignored")
	}
	return out
}

// skippedByKind counts the undecodable objects of each watched kind.
func (st *storeState) skippedByKind() map[datastore.Kind]int {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[datastore.Kind]int, len(watchedKinds))
	for _, kind := range watchedKinds {
		out[kind] = len(st.skipped[kind])
	}
	return out
}

// ipamUse counts this node's affine blocks and the addresses used in them.
func (st *storeState) ipamUse(node string) (blocks, used int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	own, _ := ipam.NodeRoutes(node, typed[*datastore.IPAMBlock](st.snaps[datastore.KindIPAMBlock]),
		typed[*datastore.BlockAffinity](st.snaps[datastore.KindBlockAffinity]))
	for _, p := range own {
		if b, ok := st.snaps[datastore.KindIPAMBlock][ipam.BlockName(p)].(*datastore.IPAMBlock); ok {
			for _, a := range b.Spec.Allocations {
				if a != nil {
					used++
				}
			}
		}
	}
	return len(own), used
}

func sorted(s datastore.Snapshot) []datastore.Object {
	out := make([]datastore.Object, 0, len(s))
	for _, o := range s {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b datastore.Object) int { return strings.Compare(a.GetName(), b.GetName()) })
	return out
}
