package bgp

import (
	"cmp"
	"fmt"
	"net/netip"
	"time"
)

// Defaults that match calico-node's bird.cfg.
const (
	DefaultASN              = 64512
	DefaultPort             = 179
	DefaultRestartTime      = 120 * time.Second // nodeMeshMaxRestartTime
	DefaultConnectRetry     = 5 * time.Second   // "connect retry time 5"
	RestartingConnectRetry  = 2 * time.Second   // GoBGP's shortest; for a peer expected back within seconds
	DefaultHoldTime         = 240 * time.Second // BIRD's; keepalive a third of it unless set
	DefaultIdleHoldAfterErr = 5 * time.Second   // "error wait time 5,30"
	// DefaultMaxPrefixes bounds what one peer may announce (BIRD's import
	// limit, FRR's maximum-prefix). A Calico cluster announces one /26
	// (or so) per node and block: 5,000 nodes with a few blocks each are
	// far below it, while a full Internet table (~1M) or a leak of one is
	// far above. 100k routes take petrel's peak RSS to ~200 MB
	// (docs/BENCHMARKS.md): one bad peer cannot exhaust a node.
	DefaultMaxPrefixes = 100_000
	addPathsSendMax    = 8
	selectionDeferral  = 30 * time.Second
	// BFD timers when the configuration leaves them out: 200 ms x 3 detects
	// a dead peer in 0.6 s, inside the 1 s a node failure may take.
	DefaultBFDInterval   = 200 * time.Millisecond
	DefaultBFDMultiplier = 3
	// DefaultLLGRStaleTime is how long a long-lived graceful restart keeps
	// a silent peer's routes when no maxRestartTime says otherwise.
	DefaultLLGRStaleTime = time.Hour
	// llgrRestartTime is the RFC 4724 restart time advertised with LLGR:
	// as Calico Enterprise renders it (BIRD's "graceful restart time 0"),
	// routes go long-lived stale almost at once. GoBGP reads 0 as "use the
	// hold time", so the shortest time it keeps is 1 s.
	llgrRestartTime = time.Second
)

// BFDConfig is a session's single-hop BFD (RFC 5880/5881). A BFD session
// going down resets the BGP session at once, without graceful restart.
type BFDConfig struct {
	Enabled bool
	// MinRx is the required minimum receive interval and MinTx the desired
	// minimum transmit interval; 0 = DefaultBFDInterval.
	MinRx, MinTx time.Duration
	Multiplier   uint8 // 0 = DefaultBFDMultiplier
}

// withDefaults fills unset timers; a disabled BFDConfig is the zero value
// so that two disabled configs always compare equal.
func (b BFDConfig) withDefaults() BFDConfig {
	if !b.Enabled {
		return BFDConfig{}
	}
	if b.MinRx == 0 {
		b.MinRx = DefaultBFDInterval
	}
	if b.MinTx == 0 {
		b.MinTx = DefaultBFDInterval
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultBFDMultiplier
	}
	return b
}

// DetectTime is how long the peer may stay silent before BFD declares it
// down, as far as our side decides it (the peer's transmit interval can
// make it longer).
func (b BFDConfig) DetectTime() time.Duration {
	return time.Duration(b.Multiplier) * b.MinRx
}

// Peer types as `calicoctl node status` prints them.
const (
	PeerTypeMesh         = "node-to-node mesh"
	PeerTypeGlobal       = "global"
	PeerTypeNodeSpecific = "node specific"
)

// PeerConfig is one desired BGP session. Two PeerConfigs that compare equal
// describe the same session: SetPeers leaves such a session untouched.
type PeerConfig struct {
	// Name is the BIRD-style protocol name (Mesh_10_0_0_2, Global_…, Node_…).
	Name    string
	Type    string
	Address netip.Addr
	ASN     uint32
	// LocalASN overrides the speaker's AS for this session (0 = speaker's).
	LocalASN uint32
	Port     uint16 // 0 = 179
	Password string // TCP MD5
	// Multihop is the eBGP multihop TTL; 0 = directly connected.
	Multihop uint8
	// SourceAddress pins the local end of the TCP session.
	SourceAddress netip.Addr
	Passive       bool
	// GracefulRestart enables RFC 4724 (restarting speaker and helper) with
	// RestartTime advertised to the peer.
	GracefulRestart bool
	RestartTime     time.Duration
	AddPaths        bool
	// HoldTime (0 = DefaultHoldTime) and KeepaliveTime (0 = a third of
	// the hold time) are independent, as in BIRD.
	HoldTime      time.Duration
	KeepaliveTime time.Duration
	// TTLSecurity > 0 is GTSM (RFC 5082, BGPPeer ttlSecurity): packets go
	// out with TTL 255 and arrive only if they crossed at most this many
	// hops (the kernel drops the rest).
	TTLSecurity uint8
	// AllowOwnAS accepts routes whose AS path holds our AS up to this many
	// times (BGPPeer numAllowedLocalASNumbers; BIRD's "allow local as").
	AllowOwnAS uint8
	// LongLivedStaleTime > 0 enables long-lived graceful restart (RFC 9494,
	// BGPPeer restartMode LongLivedGracefulRestart): a peer's routes are
	// kept, depreferred, for this long after it goes away, and ours at the
	// peer likewise. It implies GracefulRestart.
	LongLivedStaleTime time.Duration
	BFD                BFDConfig
	// RouteReflectorClient marks the peer as our RR client with ClusterID.
	RouteReflectorClient bool
	ClusterID            netip.Addr
	// MaxPrefixes is the most prefixes (per family) the peer may send
	// (0 = DefaultMaxPrefixes). Over it, the session is shut down with a
	// Cease NOTIFICATION (maximum number of prefixes reached), its routes
	// are withdrawn, and it stays down until its configuration changes.
	MaxPrefixes uint32
}

// PrefixLimit is the most prefixes the peer may send: MaxPrefixes, else
// DefaultMaxPrefixes. MaxPrefixes stays 0 under WithDefaults: an explicit
// limit and the default one are enforced by different means (toAPIPeer).
func (p PeerConfig) PrefixLimit() uint32 { return cmp.Or(p.MaxPrefixes, DefaultMaxPrefixes) }

// WithDefaults fills zero values with petrel's defaults.
func (p PeerConfig) WithDefaults() PeerConfig {
	if p.Port == 0 {
		p.Port = DefaultPort
	}
	if p.RestartTime == 0 {
		p.RestartTime = DefaultRestartTime
	}
	if p.HoldTime == 0 {
		p.HoldTime = DefaultHoldTime
	}
	if p.KeepaliveTime == 0 {
		p.KeepaliveTime = p.HoldTime / 3
	}
	if p.Type == "" {
		p.Type = PeerTypeNodeSpecific
	}
	if p.Name == "" {
		p.Name = DefaultPeerName(p.Type, p.Address)
	}
	if p.LongLivedStaleTime > 0 {
		p.GracefulRestart = true
	}
	p.BFD = p.BFD.withDefaults()
	return p
}

// Validate reports the first field that cannot work, naming the peer.
func (p PeerConfig) Validate() error {
	switch {
	case !p.Address.IsValid():
		return fmt.Errorf("peer %q: address is not set", p.Name)
	case p.ASN == 0:
		return fmt.Errorf("peer %s: asNumber is not set", p.Address)
	case p.SourceAddress.IsValid() && p.SourceAddress.Is4() != p.Address.Is4():
		return fmt.Errorf("peer %s: sourceAddress %s is not of the peer's address family", p.Address, p.SourceAddress)
	case p.Address.Is6() && p.Address.IsLinkLocalUnicast(), p.SourceAddress.Is6() && p.SourceAddress.IsLinkLocalUnicast():
		// GoBGP would send our own address as the next hop: a link-local
		// one without its interface, which no peer can route to.
		return fmt.Errorf("peer %s: IPv6 link-local session (source %s) is not supported; use global or unique-local addresses", p.Address, p.SourceAddress)
	case len(p.Password) > 80:
		return fmt.Errorf("peer %s: password longer than the 80 bytes TCP MD5 allows", p.Address)
	case p.LongLivedStaleTime > maxLLGRStaleTime:
		return fmt.Errorf("peer %s: long-lived stale time %s is longer than the %s RFC 9494 allows", p.Address, p.LongLivedStaleTime, maxLLGRStaleTime)
	}
	if err := p.BFD.validate(); err != nil {
		return fmt.Errorf("peer %s: %w", p.Address, err)
	}
	return nil
}

// maxLLGRStaleTime is the largest stale time the capability's 24 bits hold.
const maxLLGRStaleTime = (1<<24 - 1) * time.Second

// BFD intervals travel in microseconds in 32 bits; below 10 ms a Go timer
// on a busy node would declare healthy peers dead.
const (
	minBFDInterval = 10 * time.Millisecond
	maxBFDInterval = time.Duration(1<<32-1) * time.Microsecond
)

func (b BFDConfig) validate() error {
	if !b.Enabled {
		return nil
	}
	for _, iv := range []struct {
		name string
		d    time.Duration
	}{{"BFD minimum receive interval", b.MinRx}, {"BFD minimum transmit interval", b.MinTx}} {
		if iv.d != 0 && (iv.d < minBFDInterval || iv.d > maxBFDInterval) {
			return fmt.Errorf("%s %s is outside %s-%s", iv.name, iv.d, minBFDInterval, maxBFDInterval)
		}
	}
	return nil
}

// DefaultPeerName builds Calico's protocol name: Mesh_/Global_/Node_ + the
// address with '.' and ':' replaced by '_'.
func DefaultPeerName(peerType string, addr netip.Addr) string {
	prefix := "Node_"
	switch peerType {
	case PeerTypeMesh:
		prefix = "Mesh_"
	case PeerTypeGlobal:
		prefix = "Global_"
	}
	b := []byte(addr.String())
	for i, c := range b {
		if c == '.' || c == ':' {
			b[i] = '_'
		}
	}
	return prefix + string(b)
}

// SessionState is the BGP FSM state (RFC 4271), named as BIRD prints it.
type SessionState int

const (
	StateUnknown SessionState = iota
	StateIdle
	StateConnect
	StateActive
	StateOpenSent
	StateOpenConfirm
	StateEstablished
)

func (s SessionState) String() string {
	switch s {
	case StateIdle:
		return "Idle"
	case StateConnect:
		return "Connect"
	case StateActive:
		return "Active"
	case StateOpenSent:
		return "OpenSent"
	case StateOpenConfirm:
		return "OpenConfirm"
	case StateEstablished:
		return "Established"
	}
	return "Unknown"
}

// PeerStatus is one row of `petrel status`.
type PeerStatus struct {
	Config PeerConfig
	State  SessionState
	// Since is when the session entered State (or was configured).
	Since time.Time
	// Info is BIRD's info column: "Established", or the state with the last
	// error ("Connect  Socket: connection refused").
	Info string
	// RemoteRouterID is the peer's BGP identifier once OPEN was received.
	RemoteRouterID                                         string
	PrefixesReceived, PrefixesAccepted, PrefixesAdvertised uint64
	Flaps                                                  uint32
	// PrefixLimitHits counts the times the peer went over MaxPrefixes.
	PrefixLimitHits uint32
	// BFD is the BFD session's state ("Up", "Down", "Init", "AdminDown"),
	// "" when the peer has no BFD. BFD runs only while the BGP session is
	// Established (Speaker.syncBFD), so an idle peer shows "Down".
	BFD string
}

// Path is one candidate route to a prefix.
type Path struct {
	NextHop netip.Addr
	// Peer is the neighbour the path came from; invalid for local paths.
	Peer      netip.Addr
	PeerASN   uint32
	ID        uint32 // add-path identifier
	ASPath    []uint32
	LocalPref uint32
	Local     bool // originated by this node
	Stale     bool // kept by graceful restart, not yet refreshed
	// LLGRStale marks a path kept by long-lived graceful restart (it
	// carries the LLGR_STALE community): used only when nothing better
	// exists.
	LLGRStale bool
	// Communities are the path's standard ("aa:nn") and large
	// ("aa:nn:mm") communities; nil for most paths in a Calico cluster.
	Communities []string
}

// Route is the speaker's current decision for one prefix: the best path
// and, with multipath, every equal-cost path (Best included). A Route with
// no paths means the prefix was withdrawn.
type Route struct {
	Prefix netip.Prefix
	// Paths are equally good (GoBGP's multipath set), local first, then by
	// peer address: Paths[0] stands for the set where one path is needed.
	Paths []Path
	// At is when the speaker learned of this change (zero on a replay),
	// so consumers can measure update-to-FIB latency.
	At time.Time
}

// Withdrawn reports whether the prefix no longer has any path.
func (r Route) Withdrawn() bool { return len(r.Paths) == 0 }

// Best returns the best path; ok is false for a withdrawn route.
func (r Route) Best() (p Path, ok bool) {
	if len(r.Paths) == 0 {
		return Path{}, false
	}
	return r.Paths[0], true
}

// PeerEvent reports a session state change, or End-of-RIB from a peer.
type PeerEvent struct {
	Address  netip.Addr
	State    SessionState
	EndOfRIB bool // the peer finished its initial update (or GR refresh)
	At       time.Time
	// StateSince is when the session entered State: events are coalesced,
	// so At may be a later End-of-RIB's time.
	StateSince time.Time
}
