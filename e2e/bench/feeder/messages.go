// Package feeder is a minimal BGP speaker for petrel's benchmarks: it
// establishes iBGP sessions (4-byte AS, multiprotocol IPv4 or IPv6 unicast,
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
	"slices"

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
	// Family is the one family the sessions carry: bgp.RF_IPv4_UC (also
	// the zero value) or bgp.RF_IPv6_UC, for a Feed of that family.
	Family bgp.Family
}

func (s Speaker) family() bgp.Family {
	if s.Family == 0 {
		return bgp.RF_IPv4_UC
	}
	return s.Family
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
		bgp.NewCapMultiProtocol(s.family()),
		bgp.NewCapFourOctetASNumber(s.AS),
		bgp.NewCapGracefulRestart(false, false, grRestartTime,
			[]*bgp.CapGracefulRestartTuple{bgp.NewCapGracefulRestartTuple(s.family(), true)}),
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

// endOfRIB is the family's End-of-RIB marker: an empty UPDATE for IPv4
// unicast, an empty MP_UNREACH_NLRI for the others.
func endOfRIB(family bgp.Family) []byte {
	b, err := bgp.NewEndOfRib(family).Serialize()
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

// iBGPAttributes returns how a batch of prefixes is announced: every
// route carries ORIGIN IGP, an empty AS_PATH (iBGP, originated here),
// LOCAL_PREF 100 and the next hop — NEXT_HOP for IPv4, with the prefixes
// in the UPDATE's NLRI field; for IPv6 an MP_REACH_NLRI that carries the
// prefixes itself.
func iBGPAttributes(nextHop netip.Addr) (func(batch []bgp.PathNLRI) ([]bgp.PathAttributeInterface, []bgp.PathNLRI, error), error) {
	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath(nil),
		bgp.NewPathAttributeLocalPref(100),
	}
	if nextHop.Is4() {
		nh, err := bgp.NewPathAttributeNextHop(nextHop)
		if err != nil {
			return nil, fmt.Errorf("feeder: next hop %v: %w", nextHop, err)
		}
		attrs = append(attrs, nh)
		return func(batch []bgp.PathNLRI) ([]bgp.PathAttributeInterface, []bgp.PathNLRI, error) {
			return attrs, batch, nil
		}, nil
	}
	return func(batch []bgp.PathNLRI) ([]bgp.PathAttributeInterface, []bgp.PathNLRI, error) {
		mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, batch, nextHop)
		if err != nil {
			return nil, nil, fmt.Errorf("feeder: MP_REACH_NLRI via %v: %w", nextHop, err)
		}
		return append(slices.Clone(attrs), mp), nil, nil
	}, nil
}

// NewFeed encodes prefixes, all of nextHop's family, into as few UPDATEs
// as the 4096-byte message limit allows, all with the attributes of
// iBGPAttributes, and appends End-of-RIB. An empty prefix list gives
// End-of-RIB alone.
func NewFeed(prefixes []netip.Prefix, nextHop netip.Addr) (*Feed, error) {
	if !nextHop.IsValid() || nextHop.Is4In6() {
		return nil, fmt.Errorf("feeder: next hop %v is neither IPv4 nor IPv6", nextHop)
	}
	family := bgp.RF_IPv4_UC
	if nextHop.Is6() {
		family = bgp.RF_IPv6_UC
	}
	reach, err := iBGPAttributes(nextHop)
	if err != nil {
		return nil, err
	}
	update := func(batch []bgp.PathNLRI) ([]byte, error) {
		attrs, nlri, err := reach(batch)
		if err != nil {
			return nil, err
		}
		return bgp.NewBGPUpdateMessage(nil, attrs, nlri).Serialize()
	}
	// Size the attribute block once, by encoding an UPDATE with a single
	// /0 (one NLRI byte; an MP_REACH_NLRI must carry one); one more byte
	// for the length of an MP_REACH_NLRI that grows past 255 bytes.
	zero, _ := bgp.NewIPAddrPrefix(netip.PrefixFrom(nextHop, 0).Masked())
	probe, err := update([]bgp.PathNLRI{{NLRI: zero}})
	if err != nil {
		return nil, fmt.Errorf("feeder: attributes: %w", err)
	}
	room := bgp.BGP_MAX_MESSAGE_LENGTH - (len(probe) - nlriSize(0))
	if family != bgp.RF_IPv4_UC {
		room--
	}

	f := &Feed{Prefixes: len(prefixes)}
	var batch []bgp.PathNLRI
	used := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		b, err := update(batch)
		if err != nil {
			return fmt.Errorf("feeder: UPDATE of %d prefixes from %v: %w", len(batch), batch[0].NLRI, err)
		}
		f.Messages = append(f.Messages, b)
		batch, used = nil, 0
		return nil
	}
	for _, p := range prefixes {
		if p.Addr().Is4() != nextHop.Is4() {
			return nil, fmt.Errorf("feeder: prefix %v is not of next hop %v's family", p, nextHop)
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
	f.Messages = append(f.Messages, endOfRIB(family))
	f.stream = bytes.Join(f.Messages, nil)
	return f, nil
}

// nlriSize is the encoded size of one prefix of length bits: a length
// byte and the significant address bytes.
func nlriSize(bits int) int { return 1 + (bits+7)/8 }
