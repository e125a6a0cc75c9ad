// Package feeder is a minimal BGP speaker for petrel's benchmarks: it
// establishes iBGP sessions (4-byte AS, multiprotocol IPv4 unicast,
// graceful restart so that End-of-RIB means something), writes UPDATE
// messages encoded before the clock starts as fast as the socket takes
// them, then End-of-RIB, and keeps the session up with KEEPALIVEs while
// counting what the peer announces.
//
// It exists so that the route source is never the bottleneck of a
// benchmark (a BIRD feeder holds back its last UPDATE until its idle
// timeout). Messages are built with GoBGP's packet library; the session
// logic is ours and deliberately small: no RIB, no policy, no withdrawals.
// The package opens no sockets itself: callers hand it connections and
// listeners created in the network namespace they want.
package feeder

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// asTrans stands in for a 4-byte AS in the OPEN's 2-byte field (RFC 6793).
const asTrans = 23456

// grRestartTime is the restart time the feeder advertises in its graceful
// restart capability; the feeder never restarts, so it only has to be valid.
const grRestartTime = 120

// Speaker is the feeder's own identity on every session.
type Speaker struct {
	AS       uint32
	RouterID netip.Addr
	// HoldTime is offered in OPEN, in seconds; 0 means 90.
	HoldTime uint16
}

func (s Speaker) holdTime() uint16 {
	if s.HoldTime == 0 {
		return 90
	}
	return s.HoldTime
}

// openMessage encodes the OPEN the feeder sends.
func (s Speaker) openMessage() ([]byte, error) {
	as2 := uint16(asTrans)
	if s.AS <= 0xffff {
		as2 = uint16(s.AS)
	}
	caps := []bgp.ParameterCapabilityInterface{
		bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC),
		bgp.NewCapFourOctetASNumber(s.AS),
		bgp.NewCapGracefulRestart(false, false, grRestartTime,
			[]*bgp.CapGracefulRestartTuple{bgp.NewCapGracefulRestartTuple(bgp.RF_IPv4_UC, true)}),
	}
	msg, err := bgp.NewBGPOpenMessage(as2, s.holdTime(), s.RouterID,
		[]bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		return nil, fmt.Errorf("feeder: OPEN for %v: %w", s.RouterID, err)
	}
	return msg.Serialize()
}

// keepaliveMessage is the 19-byte KEEPALIVE.
func keepaliveMessage() []byte {
	b, err := bgp.NewBGPKeepAliveMessage().Serialize()
	if err != nil {
		panic(err) // a fixed header cannot fail to encode
	}
	return b
}

// endOfRIB is the IPv4 unicast End-of-RIB marker: an empty UPDATE.
func endOfRIB() []byte {
	b, err := bgp.NewEndOfRib(bgp.RF_IPv4_UC).Serialize()
	if err != nil {
		panic(err) // an empty UPDATE cannot fail to encode
	}
	return b
}

// Feed is a pre-encoded announcement: UPDATE messages that carry prefixes
// with one shared attribute set, followed by End-of-RIB.
type Feed struct {
	// Messages are the encoded UPDATEs, End-of-RIB last.
	Messages [][]byte
	// Prefixes is how many prefixes the UPDATEs announce.
	Prefixes int
	stream   []byte
}

// Stream returns all messages back to back, ready for one socket write.
func (f *Feed) Stream() []byte { return f.stream }

// iBGPAttributes is what every announced route carries: ORIGIN IGP, an
// empty AS_PATH (iBGP, originated here), NEXT_HOP and LOCAL_PREF 100.
func iBGPAttributes(nextHop netip.Addr) ([]bgp.PathAttributeInterface, error) {
	nh, err := bgp.NewPathAttributeNextHop(nextHop)
	if err != nil {
		return nil, fmt.Errorf("feeder: next hop %v: %w", nextHop, err)
	}
	return []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath(nil),
		nh,
		bgp.NewPathAttributeLocalPref(100),
	}, nil
}

// NewFeed encodes prefixes (IPv4) into as few UPDATEs as the 4096-byte
// message limit allows, all with the attributes of iBGPAttributes, and
// appends End-of-RIB. An empty prefix list gives End-of-RIB alone.
func NewFeed(prefixes []netip.Prefix, nextHop netip.Addr) (*Feed, error) {
	if !nextHop.Is4() {
		return nil, fmt.Errorf("feeder: next hop %v is not IPv4", nextHop)
	}
	attrs, err := iBGPAttributes(nextHop)
	if err != nil {
		return nil, err
	}
	// Size the attribute block once, by encoding an UPDATE with no NLRI.
	empty, err := bgp.NewBGPUpdateMessage(nil, attrs, nil).Serialize()
	if err != nil {
		return nil, fmt.Errorf("feeder: attributes: %w", err)
	}
	room := bgp.BGP_MAX_MESSAGE_LENGTH - len(empty)

	f := &Feed{Prefixes: len(prefixes)}
	var batch []bgp.PathNLRI
	used := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b, err := bgp.NewBGPUpdateMessage(nil, attrs, batch).Serialize()
		if err != nil {
			return fmt.Errorf("feeder: UPDATE of %d prefixes from %v: %w", len(batch), batch[0].NLRI, err)
		}
		f.Messages = append(f.Messages, b)
		batch, used = nil, 0
		return nil
	}
	for _, p := range prefixes {
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("feeder: prefix %v is not IPv4", p)
		}
		nlri, err := bgp.NewIPAddrPrefix(p.Masked())
		if err != nil {
			return nil, fmt.Errorf("feeder: prefix %v: %w", p, err)
		}
		size := nlriSize(p.Bits())
		if used+size > room {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		batch = append(batch, bgp.PathNLRI{NLRI: nlri})
		used += size
	}
	if err := flush(); err != nil {
		return nil, err
	}
	f.Messages = append(f.Messages, endOfRIB())
	f.stream = bytes.Join(f.Messages, nil)
	return f, nil
}

// nlriSize is the encoded size of one prefix of length bits: a length
// byte and the significant address bytes.
func nlriSize(bits int) int { return 1 + (bits+7)/8 }
