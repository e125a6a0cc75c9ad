package daemon

import (
	"context"
	"slices"
	"testing"

	"github.com/petrel-net/petrel/datastore"
)

type fakeIgnored struct{ sets [][]string }

func (f *fakeIgnored) SetIgnoredInterfaces(_ context.Context, names []string) error {
	f.sets = append(f.sets, names)
	return nil
}

// ignoredInterfaces: the node's own BGPConfiguration first, then
// default's; applied to kernel sync when it changes, also back to none.
func TestIgnoredInterfaces(t *testing.T) {
	cfg := func(name string, ifaces ...string) *datastore.BGPConfiguration {
		c := &datastore.BGPConfiguration{Spec: datastore.BGPConfigurationSpec{IgnoredInterfaces: ifaces}}
		c.Name = name
		return c
	}
	for _, tc := range []struct {
		configs []*datastore.BGPConfiguration
		want    []string
	}{
		{nil, nil},
		{[]*datastore.BGPConfiguration{cfg("default", "eth2", "ens*")}, []string{"eth2", "ens*"}},
		{[]*datastore.BGPConfiguration{cfg("default", "eth2"), cfg("node.a", "bond*")}, []string{"bond*"}},
		{[]*datastore.BGPConfiguration{cfg("default", "eth2"), cfg("node.b", "bond*")}, []string{"eth2"}},
	} {
		if got := computeDesired(snapshot{Configs: tc.configs}, self{Name: "a"}).IgnoredInterfaces; !slices.Equal(got, tc.want) {
			t.Errorf("configs %v: ignored %q, want %q", tc.configs, got, tc.want)
		}
	}

	k := &fakeIgnored{}
	r := &ignoredReconciler{kernel: k}
	for _, names := range [][]string{{"eth2"}, {"eth2"}, nil} {
		if err := r.Reconcile(t.Context(), &desired{IgnoredInterfaces: names}); err != nil {
			t.Fatal(err)
		}
	}
	if len(k.sets) != 2 || !slices.Equal(k.sets[0], []string{"eth2"}) || k.sets[1] != nil {
		t.Errorf("kernel sync told %q, want [eth2] once, then none", k.sets)
	}
}
