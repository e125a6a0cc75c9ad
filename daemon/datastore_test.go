package daemon

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/memory"
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
