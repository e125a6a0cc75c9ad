package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/services"
)

// calls records, in order, the calls the fakes below receive.
type calls []string

func (c *calls) add(s string) { *c = append(*c, s) }

// fakeSpeaker stands in for *bgp.Speaker; fail makes the named call fail.
type fakeSpeaker struct {
	calls *calls
	fail  string
}

func (f *fakeSpeaker) call(name string) error {
	f.calls.add(name)
	if f.fail == name {
		return errors.New(name + " refused")
	}
	return nil
}

func (f *fakeSpeaker) SetExportRanges(context.Context, []netip.Prefix) error {
	return f.call("SetExportRanges")
}
func (f *fakeSpeaker) SetReflect(context.Context, bool) error { return f.call("SetReflect") }
func (f *fakeSpeaker) SetOriginated(context.Context, []netip.Prefix) error {
	return f.call("SetOriginated")
}
func (f *fakeSpeaker) SetPeers(context.Context, []bgp.PeerConfig) error { return f.call("SetPeers") }
func (f *fakeSpeaker) SetRoutePolicy(context.Context, bgp.RoutePolicy) error {
	return f.call("SetRoutePolicy")
}

// fakeKernel stands in for *kernelsync.Sync.
type fakeKernel struct {
	calls    *calls
	excluded []netip.Prefix
}

func (f *fakeKernel) SetBlackholes([]netip.Prefix) { f.calls.add("SetBlackholes") }
func (f *fakeKernel) SetExcluded(_ context.Context, p []netip.Prefix) error {
	f.calls.add("SetExcluded")
	f.excluded = p
	return nil
}

type fakeTunnel struct{ calls *calls }

func (f *fakeTunnel) Sync([]dataplane.Remote) error {
	f.calls.add("Sync")
	return nil
}

type fakeAPI struct {
	calls    *calls
	problems []string
}

func (f *fakeAPI) setProblems(p []string) bool {
	f.calls.add("setProblems")
	changed := !slices.Equal(f.problems, p)
	f.problems = p
	return changed
}

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

// reconcileTwice runs r on first, then on second, and returns the calls
// of the second pass.
func reconcileTwice(t *testing.T, c *calls, r reconciler, first, second desired) calls {
	t.Helper()
	if err := r.Reconcile(t.Context(), &first); err != nil {
		t.Fatalf("first pass: %v", err)
	}
	*c = nil
	if err := r.Reconcile(t.Context(), &second); err != nil {
		t.Fatalf("second pass: %v", err)
	}
	return *c
}

func TestExportReconcilerChangesOnlyWhatDiffers(t *testing.T) {
	base := desired{ExportRanges: pfx("10.0.0.0/16"), Originated: pfx("10.0.1.0/26")}
	moreOriginated := base
	moreOriginated.Originated = pfx("10.0.1.0/26", "10.0.2.0/26")
	reflector := base
	reflector.Reflector = true
	for name, tc := range map[string]struct {
		next desired
		want calls
	}{
		"nothing changed":  {base, nil},
		"a new block":      {moreOriginated, calls{"SetOriginated"}},
		"became reflector": {reflector, calls{"SetReflect"}},
	} {
		t.Run(name, func(t *testing.T) {
			var c calls
			r := &exportReconciler{speaker: &fakeSpeaker{calls: &c}}
			if got := reconcileTwice(t, &c, r, base, tc.next); !slices.Equal(got, tc.want) {
				t.Errorf("second pass calls %v, want %v", got, tc.want)
			}
		})
	}
}

// A change the speaker refused is tried again on the next pass, even
// when desired did not change meanwhile.
func TestReconcilerRetriesAFailedChange(t *testing.T) {
	var c calls
	sp := &fakeSpeaker{calls: &c, fail: "SetPeers"}
	r := &peerReconciler{speaker: sp}
	d := desired{Peers: []bgp.PeerConfig{{Address: netip.MustParseAddr("10.0.0.2"), ASN: 64512}}}
	if err := r.Reconcile(t.Context(), &d); err == nil {
		t.Fatal("a refused SetPeers is not reported")
	}
	sp.fail = ""
	c = nil
	if err := r.Reconcile(t.Context(), &d); err != nil || !slices.Equal(c, calls{"SetPeers"}) {
		t.Fatalf("unchanged desired after a failure: calls %v (%v), want SetPeers again", c, err)
	}
	if got := reconcileTwice(t, &c, r, d, d); len(got) != 0 {
		t.Errorf("once applied, an unchanged pass calls %v, want none", got)
	}
}

func TestPeerReconcilerAppliesAChangedPeerSet(t *testing.T) {
	var c calls
	r := &peerReconciler{speaker: &fakeSpeaker{calls: &c}}
	one := desired{Peers: []bgp.PeerConfig{{Address: netip.MustParseAddr("10.0.0.2"), ASN: 64512}}}
	two := desired{Peers: append(slices.Clone(one.Peers), bgp.PeerConfig{Address: netip.MustParseAddr("10.0.0.3"), ASN: 64512})}
	if got := reconcileTwice(t, &c, r, one, two); !slices.Equal(got, calls{"SetPeers"}) {
		t.Errorf("calls %v, want one SetPeers", got)
	}
	if got := reconcileTwice(t, &c, r, two, two); len(got) != 0 {
		t.Errorf("unchanged peers: calls %v, want none", got)
	}
}

func TestBlockReconcilerSetsBlackholesOnChange(t *testing.T) {
	var c calls
	r := &blockReconciler{kernel: &fakeKernel{calls: &c}}
	a, b := desired{Blackholes: pfx("10.0.1.0/26")}, desired{Blackholes: pfx("10.0.1.0/26", "10.0.1.64/26")}
	if got := reconcileTwice(t, &c, r, a, a); len(got) != 0 {
		t.Errorf("unchanged blocks: calls %v", got)
	}
	if got := reconcileTwice(t, &c, r, a, b); !slices.Equal(got, calls{"SetBlackholes"}) {
		t.Errorf("new block: calls %v", got)
	}
}

func TestVXLANReconciler(t *testing.T) {
	var c calls
	setups, failSetup := 0, true
	r := &vxlanReconciler{
		kernel: &fakeKernel{calls: &c},
		setup: func(context.Context, vxlanFamily, []netip.Prefix) (tunnel, error) {
			setups++
			c.add("setup")
			if failSetup {
				return nil, errors.New("no tunnel address")
			}
			return &fakeTunnel{calls: &c}, nil
		},
	}
	off := desired{}
	on := desired{VXLAN: vxlanPlan{Enabled: true, Excluded: pfx("10.0.9.0/26"), Remotes: []dataplane.Remote{{
		Node: "b", Underlay: netip.MustParseAddr("172.16.0.2"), TunnelAddr: netip.MustParseAddr("10.0.0.1"),
		MAC: net.HardwareAddr{0x66, 0, 0, 0, 0, 1}, Blocks: pfx("10.0.9.0/26"),
	}}}}
	if got := reconcileTwice(t, &c, r, off, off); len(got) != 0 {
		t.Errorf("no VXLAN pool: calls %v, want none", got)
	}
	if err := r.Reconcile(t.Context(), &on); err == nil {
		t.Error("a failed setup is not reported")
	}
	failSetup = false
	c = nil
	if err := r.Reconcile(t.Context(), &on); err != nil {
		t.Fatal(err)
	}
	// The hand-off from kernel sync comes before the tunnel's routes.
	if want := (calls{"setup", "SetExcluded", "Sync"}); !slices.Equal(c, want) {
		t.Errorf("setting up: calls %v, want %v", c, want)
	}
	if got := reconcileTwice(t, &c, r, on, on); !slices.Equal(got, calls{"Sync"}) {
		t.Errorf("unchanged: calls %v, want only Sync (it repairs the device)", got)
	}
	if setups != 2 {
		t.Errorf("%d setups, want 2 (one failed, one kept)", setups)
	}
}

// Each family's reconciler follows its own plan: an IPv6 VXLAN pool sets
// up vxlan-v6.calico alone, with its tunnel address from that pool, and
// hands over only its IPv6 blocks; vxlan.calico is not made for it.
func TestVXLANReconcilerPerFamily(t *testing.T) {
	var c calls
	var gotFam []string
	var gotPools []netip.Prefix
	setup := func(_ context.Context, fam vxlanFamily, pools []netip.Prefix) (tunnel, error) {
		gotFam, gotPools = append(gotFam, fam.name), pools
		return &fakeTunnel{calls: &c}, nil
	}
	kernel := &fakeKernel{calls: &c}
	all := &excludeUnion{kernel: kernel}
	v4 := &vxlanReconciler{fam: vxlanV4, setup: setup, kernel: all.owner("VXLAN")}
	v6 := &vxlanReconciler{fam: vxlanV6, setup: setup, kernel: all.owner("VXLAN IPv6")}
	d := desired{VXLANV6: vxlanPlan{Enabled: true, Pools: pfx("fd10::/112"), Excluded: pfx("fd10::40/122")}}
	for _, r := range []*vxlanReconciler{v4, v6} {
		if err := r.Reconcile(t.Context(), &d); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(gotFam, []string{"IPv6"}) || !slices.Equal(gotPools, pfx("fd10::/112")) {
		t.Errorf("set up %v from pools %v, want only IPv6 from fd10::/112", gotFam, gotPools)
	}
	if !slices.Equal(kernel.excluded, pfx("fd10::40/122")) {
		t.Errorf("kernel sync leaves %v alone, want the IPv6 block", kernel.excluded)
	}
	if v4.Name() != "VXLAN" || v6.Name() != "VXLAN IPv6" {
		t.Errorf("names %q %q", v4.Name(), v6.Name())
	}
}

func TestStatusReconcilerShowsProblems(t *testing.T) {
	var c calls
	api := &fakeAPI{calls: &c}
	r := &statusReconciler{api: api, log: slog.New(slog.DiscardHandler)}
	d := desired{Problems: []string{"IPPool bad: spec.cidr: not a CIDR; pool ignored"}}
	if err := r.Reconcile(t.Context(), &d); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(api.problems, d.Problems) {
		t.Errorf("status shows %v, want %v", api.problems, d.Problems)
	}
}

// The loop runs every concern in its documented order, and one failing
// does not stop those after it.
func TestDatastoreLoopOrder(t *testing.T) {
	var c calls
	sp := &fakeSpeaker{calls: &c, fail: "SetOriginated"}
	targets := loopTargets{speaker: sp, kernel: &fakeKernel{calls: &c}, api: &fakeAPI{calls: &c}, log: slog.New(slog.DiscardHandler)}
	loop := datastoreLoop(targets, &desired{}, func(context.Context, vxlanFamily, []netip.Prefix) (tunnel, error) { return &fakeTunnel{calls: &c}, nil })
	d := desired{VXLAN: vxlanPlan{Enabled: true}}
	err := loop.Reconcile(t.Context(), &d)
	if err == nil || !strings.Contains(err.Error(), "exported prefixes: originating: SetOriginated refused") {
		t.Errorf("error %v, want the refused SetOriginated named", err)
	}
	want := calls{"SetExportRanges", "SetReflect", "SetOriginated", "SetBlackholes", "SetExcluded", "Sync", "setProblems", "SetRoutePolicy", "SetPeers"}
	if !slices.Equal(c, want) {
		t.Errorf("calls %v\nwant  %v", c, want)
	}
}

// Without kernel sync there are no blackholes to keep and nothing to hand
// over: the loop skips both rather than call a nil kernel.
func TestDatastoreLoopWithoutKernelSync(t *testing.T) {
	var c calls
	sp := &fakeSpeaker{calls: &c}
	targets := loopTargets{speaker: sp, api: &fakeAPI{calls: &c}, log: slog.New(slog.DiscardHandler)}
	loop := datastoreLoop(targets, &desired{}, func(context.Context, vxlanFamily, []netip.Prefix) (tunnel, error) { return &fakeTunnel{calls: &c}, nil })
	d := desired{VXLAN: vxlanPlan{Enabled: true}, Blackholes: pfx("10.0.1.0/26")}
	if err := loop.Reconcile(t.Context(), &d); err != nil {
		t.Fatal(err)
	}
	want := calls{"SetExportRanges", "SetReflect", "SetOriginated", "Sync", "setProblems", "SetRoutePolicy", "SetPeers"}
	if !slices.Equal(c, want) {
		t.Errorf("calls %v\nwant  %v", c, want)
	}
}

func TestStandaloneLoopDrivesExportsThenPeers(t *testing.T) {
	var c calls
	loop := standaloneLoop(loopTargets{speaker: &fakeSpeaker{calls: &c}})
	if err := loop.Reconcile(t.Context(), &desired{}); err != nil {
		t.Fatal(err)
	}
	if want := (calls{"SetExportRanges", "SetReflect", "SetOriginated", "SetPeers"}); !slices.Equal(c, want) {
		t.Errorf("calls %v, want %v", c, want)
	}
}

// logSeverityScreen: the node's own BGPConfiguration wins over default's,
// an unset one falls back to the environment's level, and the level
// changes live.
func TestLogLevelFollowsBGPConfiguration(t *testing.T) {
	cfg := func(name, level string) *datastore.BGPConfiguration {
		c := &datastore.BGPConfiguration{Spec: datastore.BGPConfigurationSpec{LogSeverityScreen: level}}
		c.Name = name
		return c
	}
	if l, ok := logLevelFrom([]*datastore.BGPConfiguration{cfg("default", "Warning"), cfg("node.a", "Debug")}, "a"); !ok || l != slog.LevelDebug {
		t.Errorf("node's Debug over default's Warning: got %v %v", l, ok)
	}
	if l, ok := logLevelFrom([]*datastore.BGPConfiguration{cfg("default", "Warning"), cfg("node.b", "Debug")}, "a"); !ok || l != slog.LevelWarn {
		t.Errorf("another node's object must not count: got %v %v", l, ok)
	}
	if _, ok := logLevelFrom([]*datastore.BGPConfiguration{cfg("default", "")}, "a"); ok {
		t.Error("an unset logSeverityScreen set a level")
	}
	level := new(slog.LevelVar)
	r := &logLevelReconciler{level: level, fallback: slog.LevelInfo, log: slog.New(slog.DiscardHandler)}
	debug := slog.LevelDebug
	for _, step := range []struct {
		d    desired
		want slog.Level
	}{{desired{LogLevel: &debug}, slog.LevelDebug}, {desired{}, slog.LevelInfo}} {
		if err := r.Reconcile(t.Context(), &step.d); err != nil || level.Level() != step.want {
			t.Errorf("level %v (%v), want %v", level.Level(), err, step.want)
		}
	}
}

type fakeServices struct {
	calls *calls
	ready chan struct{}
}

func (f *fakeServices) SetConfig(services.Config) { *f.calls = append(*f.calls, "SetConfig") }
func (f *fakeServices) Ready() <-chan struct{}    { return f.ready }

// The first peer set waits for the first Service advertisement, so that a
// restarted node's End-of-RIB follows its Service prefixes.
func TestFirstPeersWaitForServices(t *testing.T) {
	var c calls
	svc := &fakeServices{calls: &c, ready: make(chan struct{})}
	targets := loopTargets{speaker: &fakeSpeaker{calls: &c}, api: &fakeAPI{calls: &c}, services: svc, log: slog.New(slog.DiscardHandler)}
	loop := datastoreLoop(targets, &desired{}, func(context.Context, vxlanFamily, []netip.Prefix) (tunnel, error) { return &fakeTunnel{calls: &c}, nil })
	done := make(chan error)
	go func() { done <- loop.Reconcile(t.Context(), &desired{}) }()
	select {
	case err := <-done:
		t.Fatalf("the first pass finished (err %v) before the Service controller was ready", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(svc.ready)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if i, j := slices.Index(c, "SetConfig"), slices.Index(c, "SetPeers"); i < 0 || j < i {
		t.Fatalf("calls %v: want SetConfig, then SetPeers", c)
	}
}

// A listen port or bindMode that differs from the running one asks for a
// restart in place, naming the change; an unchanged one does not.
func TestStatusReconcilerRestartsForListenSettings(t *testing.T) {
	var asked []*RestartInPlace
	r := &statusReconciler{api: &fakeAPI{calls: &calls{}}, log: slog.New(slog.DiscardHandler), startedPort: 179,
		restart: func(ri *RestartInPlace) { asked = append(asked, ri) }}
	if err := r.Reconcile(t.Context(), &desired{ListenPort: 179}); err != nil || len(asked) != 0 {
		t.Fatalf("unchanged settings: err %v, restarts %v", err, asked)
	}
	if err := r.Reconcile(t.Context(), &desired{ListenPort: 1790}); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || !strings.Contains(asked[0].Reason, "listenPort 179 -> 1790") {
		t.Fatalf("restarts %v, want one naming listenPort 179 -> 1790", asked)
	}
	r.restart = nil
	asked = nil
	if err := r.Reconcile(t.Context(), &desired{ListenPort: 179, BindNodeIP: true}); err != nil || len(asked) != 0 {
		t.Fatalf("without a restart hook: err %v, restarts %v", err, asked)
	}
}
