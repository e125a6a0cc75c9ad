package bgp

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func peer(addr string, asn uint32) PeerConfig {
	return PeerConfig{Address: mustAddr(addr), ASN: asn, GracefulRestart: true}.WithDefaults()
}

func TestPlanPeers(t *testing.T) {
	a, b, c := peer("10.0.0.1", 64512), peer("10.0.0.2", 64512), peer("10.0.0.3", 64513)
	bChanged := b
	bChanged.Password = "secret"
	running := map[netip.Addr]PeerConfig{a.Address: a, b.Address: b}

	tests := []struct {
		name                 string
		desired              []PeerConfig
		add, remove, replace []string
		wantErr              string
	}{
		{name: "unchanged set touches nothing", desired: []PeerConfig{a, b}},
		{name: "defaults are applied before comparing", desired: []PeerConfig{{Address: a.Address, ASN: 64512, GracefulRestart: true}, b}},
		{name: "new peer only added", desired: []PeerConfig{a, b, c}, add: []string{"10.0.0.3"}},
		{name: "missing peer removed", desired: []PeerConfig{a}, remove: []string{"10.0.0.2"}},
		{name: "changed peer replaced, others untouched", desired: []PeerConfig{a, bChanged}, replace: []string{"10.0.0.2"}},
		{
			name:    "invalid update of a running peer keeps the running one",
			desired: []PeerConfig{a, {Address: b.Address, ASN: 0}},
			wantErr: "peer 10.0.0.2: asNumber is not set",
		},
		{
			name:    "invalid new peer is skipped, the rest applied",
			desired: []PeerConfig{a, b, {Address: c.Address}},
			wantErr: "peer 10.0.0.3: asNumber is not set",
		},
		{
			name:    "duplicate address keeps the first",
			desired: []PeerConfig{a, b, func() PeerConfig { x := a; x.Name = "other"; return x }()},
			wantErr: "configured twice",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, want, err := planPeers(running, tt.desired)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
			}
			check := func(what string, got []PeerConfig, want []string) {
				t.Helper()
				var g []string
				for _, p := range got {
					g = append(g, p.Address.String())
				}
				if strings.Join(g, ",") != strings.Join(want, ",") {
					t.Errorf("%s = %v, want %v", what, g, want)
				}
			}
			check("add", plan.add, tt.add)
			check("remove", plan.remove, tt.remove)
			check("replace", plan.replace, tt.replace)
			if _, ok := want[a.Address]; !ok {
				t.Errorf("desired set lost the valid peer %s", a.Address)
			}
		})
	}
}

func TestDefaultPeerName(t *testing.T) {
	for _, tt := range []struct{ typ, addr, want string }{
		{PeerTypeMesh, "10.0.0.5", "Mesh_10_0_0_5"},
		{PeerTypeGlobal, "fd00::1", "Global_fd00__1"},
		{PeerTypeNodeSpecific, "192.168.1.1", "Node_192_168_1_1"},
	} {
		if got := DefaultPeerName(tt.typ, mustAddr(tt.addr)); got != tt.want {
			t.Errorf("DefaultPeerName(%q, %s) = %q, want %q", tt.typ, tt.addr, got, tt.want)
		}
	}
}

func TestToAPIPeerGracefulRestartNeedsBothSwitches(t *testing.T) {
	p := peer("10.0.0.9", 64512)
	p.AddPaths = true
	p.Multihop = 5
	p.SourceAddress = mustAddr("10.0.0.1")
	p.RestartTime = 90 * time.Second
	ap := toAPIPeer(p, true)
	if !ap.GracefulRestart.Enabled || ap.GracefulRestart.RestartTime != 90 || !ap.GracefulRestart.LocalRestarting {
		t.Errorf("peer-level graceful restart = %+v", ap.GracefulRestart)
	}
	if !ap.AfiSafis[0].MpGracefulRestart.Config.Enabled {
		t.Error("per-family graceful restart not enabled: the capability would carry no families")
	}
	if ap.AfiSafis[0].AddPaths.Config.SendMax == 0 || !ap.AfiSafis[0].AddPaths.Config.Receive {
		t.Error("add-paths not negotiated in both directions")
	}
	if ap.Timers.Config.ConnectRetry != 5 {
		t.Errorf("connect retry = %d, want Calico's 5 s (GoBGP's default is 120 s)", ap.Timers.Config.ConnectRetry)
	}
	if !ap.EbgpMultihop.Enabled || ap.EbgpMultihop.MultihopTtl != 5 || ap.Transport.LocalAddress != "10.0.0.1" {
		t.Errorf("multihop/source not rendered: %+v %+v", ap.EbgpMultihop, ap.Transport)
	}
	if ap.Timers.Config.HoldTime != 240 || ap.Timers.Config.KeepaliveInterval != 80 {
		t.Errorf("hold/keepalive = %d/%d, want BIRD's 240/80", ap.Timers.Config.HoldTime, ap.Timers.Config.KeepaliveInterval)
	}
	timed := peer("10.0.0.3", 64513)
	timed.KeepaliveTime, timed.TTLSecurity, timed.AllowOwnAS = 10*time.Second, 2, 3
	tp := toAPIPeer(timed, false)
	if tp.Timers.Config.HoldTime != 240 || tp.Timers.Config.KeepaliveInterval != 10 {
		t.Errorf("keepaliveTime 10s: hold/keepalive = %d/%d, want 240/10 (independent, as BIRD)", tp.Timers.Config.HoldTime, tp.Timers.Config.KeepaliveInterval)
	}
	if !tp.TtlSecurity.GetEnabled() || tp.TtlSecurity.GetTtlMin() != 254 || tp.EbgpMultihop != nil {
		t.Errorf("ttlSecurity 2: %v %v, want GTSM with minimum TTL 254 and no multihop", tp.TtlSecurity, tp.EbgpMultihop)
	}
	if tp.Conf.AllowOwnAsn != 3 {
		t.Errorf("allow own AS = %d, want 3", tp.Conf.AllowOwnAsn)
	}
	if ap.AfiSafis[0].PrefixLimits != nil {
		t.Errorf("GoBGP prefix limit %v without maxPrefixes; the default is the route table's", ap.AfiSafis[0].PrefixLimits)
	}
	v6p := peer("fd00::2", 64512)
	v6p.MaxPrefixes = 50
	v6 := toAPIPeer(v6p, false)
	if v6.AfiSafis[0].Config.Family.Afi.String() != "AFI_IP6" {
		t.Errorf("IPv6 peer family = %v", v6.AfiSafis[0].Config.Family)
	}
	if l := v6.AfiSafis[0].PrefixLimits; l.GetMaxPrefixes() != 50 || l.GetFamily().GetAfi().String() != "AFI_IP6" {
		t.Errorf("IPv6 prefix limit = %v", l)
	}
}

func TestToAPIPeerBFDAndLongLivedGracefulRestart(t *testing.T) {
	p := PeerConfig{Address: mustAddr("10.0.0.9"), ASN: 64512, LongLivedStaleTime: 30 * time.Second,
		BFD: BFDConfig{Enabled: true, MinRx: 100 * time.Millisecond}}.WithDefaults()
	if !p.GracefulRestart || p.BFD.MinTx != DefaultBFDInterval || p.BFD.Multiplier != DefaultBFDMultiplier {
		t.Fatalf("defaults not applied: %+v", p)
	}
	if d := p.BFD.DetectTime(); d != 300*time.Millisecond {
		t.Errorf("detect time = %s, want 3 x 100ms", d)
	}
	if b := bfdConfig(p.BFD); !b.Enabled || b.RequiredMinimumReceive != 100000 || b.DesiredMinimumTxInterval != 200000 || b.DetectionMultiplier != 3 {
		t.Errorf("BFD = %+v, want on, rx 100000 us, tx 200000 us, x3", b)
	}
	ap := toAPIPeer(p, false)
	if ap.Bfd != nil {
		t.Errorf("BFD configured on GoBGP's neighbour (petrel runs it beside): %+v", ap.Bfd)
	}
	gr, llgr := ap.GracefulRestart, ap.AfiSafis[0].LongLivedGracefulRestart
	if !gr.LonglivedEnabled || gr.RestartTime != 1 || llgr == nil || !llgr.Config.Enabled || llgr.Config.RestartTime != 30 {
		t.Errorf("LLGR = %+v / %+v, want long-lived on, restart time 1 s, stale time 30 s", gr, llgr)
	}
	// Disabled BFD configs compare equal whatever their timers said, so
	// SetPeers does not reset a session for them.
	a := PeerConfig{Address: mustAddr("10.0.0.9"), ASN: 1, BFD: BFDConfig{MinRx: time.Second}}.WithDefaults()
	if b := (PeerConfig{Address: mustAddr("10.0.0.9"), ASN: 1}).WithDefaults(); a != b {
		t.Errorf("%+v != %+v", a.BFD, b.BFD)
	}
}

// TestBFDState: the engine's peer state is readable (bfdState reaches into
// GoBGP's unexported fields; this fails if their shape changes). The test
// ends before the engine's first second, in which it opens no socket.
func TestBFDState(t *testing.T) {
	ctx := context.Background()
	e, err := newBFDEngine(ctx, &Speaker{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	a := mustAddr("127.0.0.9")
	if st, ok := bfdState(e, a); ok {
		t.Fatalf("unknown peer has state %q", st)
	}
	if err := e.AddPeer(ctx, a, bfdConfig(BFDConfig{Enabled: true}.withDefaults()), ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		st, ok := bfdState(e, a)
		if ok && st == "Down" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %q, %v; want Down", st, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.DeletePeer(ctx, a); err != nil {
		t.Fatal(err)
	}
}

func TestValidateBFDAndStaleTime(t *testing.T) {
	for _, tt := range []struct {
		p    PeerConfig
		want string
	}{
		{PeerConfig{BFD: BFDConfig{Enabled: true, MinRx: time.Millisecond}}, "peer 10.0.0.9: BFD minimum receive interval 1ms is outside 10ms-"},
		{PeerConfig{BFD: BFDConfig{Enabled: true, MinTx: 2 * time.Hour}}, "BFD minimum transmit interval 2h0m0s is outside"},
		{PeerConfig{LongLivedStaleTime: 1 << 25 * time.Second}, "long-lived stale time"},
		{PeerConfig{BFD: BFDConfig{Enabled: true}, LongLivedStaleTime: time.Hour}, ""},
	} {
		tt.p.Address, tt.p.ASN = mustAddr("10.0.0.9"), 64512
		err := tt.p.Validate()
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.p, err, tt.want)
		}
	}
}

func TestExportRangeAdmits(t *testing.T) {
	block := exactly(netip.MustParsePrefix("192.168.0.192/26"))
	pool := within(netip.MustParsePrefix("192.168.0.0/16"))
	for _, tt := range []struct {
		r      exportRange
		prefix string
		want   bool
	}{
		{block, "192.168.0.192/26", true},
		{block, "192.168.0.192/27", false},
		{block, "192.168.0.0/26", false},
		{pool, "192.168.5.7/32", true},
		{pool, "192.168.0.0/16", true},
		{pool, "192.0.0.0/8", false},
		{pool, "10.0.0.0/26", false},
	} {
		if got := tt.r.admits(netip.MustParsePrefix(tt.prefix)); got != tt.want {
			t.Errorf("%+v admits %s = %v, want %v", tt.r, tt.prefix, got, tt.want)
		}
	}
}

// Kernel sync may start before the peers are configured; a speaker that
// has no peers yet must not look synced, or a restart's adopted routes
// would be swept before any peer could refresh them.
func TestInitialSyncWaitsForThePeerSet(t *testing.T) {
	s, err := New(Config{RouterID: netip.MustParseAddr("10.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if s.InitialSyncDone() {
		t.Fatal("synced before any peer set was applied")
	}
	if err := s.SetPeers(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !s.InitialSyncDone() {
		t.Fatal("not synced with an empty peer set applied")
	}
}
