package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/kubernetes"
	"github.com/petrel-net/petrel/datastore/memory"
	"github.com/petrel-net/petrel/internal/testenv/kubeapi"
	"github.com/petrel-net/petrel/nodeaddr"
)

// noBFDCRD is a datastore without Calico Enterprise's BFDConfiguration
// CRD, as an open-source Calico cluster has.
type noBFDCRD struct{ *memory.Backend }

func (b noBFDCRD) List(ctx context.Context, kind datastore.Kind) ([]datastore.Object, string, error) {
	if kind == datastore.KindBFDConfiguration {
		return nil, "", errors.New(`the server could not find the requested resource (get bfdconfigurations)`)
	}
	return b.Backend.List(ctx, kind)
}

// TestSyncedWithoutBFDConfigurations: a node starts on a datastore that
// cannot list BFDConfigurations (BFD then takes petrel's defaults).
func TestSyncedWithoutBFDConfigurations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := newStoreState(ctx, noBFDCRD{memory.New()}, slog.New(slog.DiscardHandler))
	if err := st.waitSynced(ctx); err != nil {
		t.Fatalf("not synced without BFDConfigurations: %v", err)
	}
	if in := st.read(); in.BFDConfigs != nil {
		t.Errorf("BFDConfigs = %v", in.BFDConfigs)
	}
}

// registerNode writes both families' addresses (an invalid one clears its
// field), resolves against what the Node holds, and creates nothing when
// resolving fails: in memory and through a real kube-apiserver, where the
// addresses are the Node's projectcalico.org annotations.
func TestRegisterNodeWritesBothFamilies(t *testing.T) {
	t.Run("memory", func(t *testing.T) { checkRegisterNode(t, memory.New()) })
	t.Run("kubernetes", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs a kube-apiserver")
		}
		b, err := kubernetes.New(kubeapi.Start(t).Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		checkRegisterNode(t, b)
	})
}

func checkRegisterNode(t *testing.T, b datastore.Backend) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	v4, v6 := netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("fd00::5/64")
	fixed := func(a nodeaddr.Addrs, seen *nodeaddr.Addrs) func(nodeaddr.Addrs) (nodeaddr.Addrs, error) {
		return func(current nodeaddr.Addrs) (nodeaddr.Addrs, error) { *seen = current; return a, nil }
	}
	spec := func() datastore.NodeBGPSpec {
		obj, err := b.Get(ctx, datastore.KindNode, "node-a")
		if err != nil {
			t.Fatal(err)
		}
		return *obj.(*datastore.Node).Spec.BGP
	}
	var seen nodeaddr.Addrs
	if _, err := registerNode(ctx, b, "node-a", fixed(nodeaddr.Addrs{IPv4: v4, IPv6: v6}, &seen), log); err != nil {
		t.Fatal(err)
	}
	if s := spec(); s.IPv4Address != "10.0.0.5/24" || s.IPv6Address != "fd00::5/64" || seen != (nodeaddr.Addrs{}) {
		t.Errorf("new node: %+v (resolved against %+v)", s, seen)
	}
	if _, err := registerNode(ctx, b, "node-a", fixed(nodeaddr.Addrs{IPv6: v6}, &seen), log); err != nil {
		t.Fatal(err)
	}
	if s := spec(); s.IPv4Address != "" || s.IPv6Address != "fd00::5/64" || seen != (nodeaddr.Addrs{IPv4: v4, IPv6: v6}) {
		t.Errorf("now IPv6-only: %+v (resolved against %+v)", s, seen)
	}
	_, err := registerNode(ctx, b, "node-b", func(nodeaddr.Addrs) (nodeaddr.Addrs, error) { return nodeaddr.Addrs{}, errors.New("IP6=\"x\": bad") }, log)
	if err == nil || !strings.Contains(err.Error(), `node "node-b": IP6="x": bad`) {
		t.Errorf("resolve error: %v", err)
	}
	if _, err := b.Get(ctx, datastore.KindNode, "node-b"); !errors.Is(err, datastore.ErrNotFound) {
		t.Errorf("node-b registered despite the error: %v", err)
	}
}
