package feeder

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// BGP message types (RFC 4271 4.1).
const (
	msgOpen         = 1
	msgUpdate       = 2
	msgNotification = 3
	msgKeepalive    = 4
	msgRouteRefresh = 5
)

const headerLen = 19

// handshakeTimeout bounds the OPEN/KEEPALIVE exchange of one attempt.
const handshakeTimeout = 10 * time.Second

// Session is an established BGP session. A reader goroutine consumes what
// the peer sends (counting the prefixes it announces) and a keepalive
// goroutine keeps the peer's hold timer fed, until Close or an error.
type Session struct {
	PeerAS       uint32
	PeerRouterID netip.Addr
	HoldTime     time.Duration // negotiated; 0 means no keepalives

	conn net.Conn
	wmu  sync.Mutex // one writer at a time: feed and keepalives

	rmu      sync.Mutex
	received map[netip.Prefix]struct{}
	eor      bool

	closeOnce sync.Once
	done      chan struct{}
	err       error // why the session ended, valid after done
}

// Establish runs the OPEN/KEEPALIVE exchange on conn (either side may have
// dialed) and starts the session's goroutines. The peer must be in the
// speaker's AS: every benchmark session is iBGP. On failure conn is closed.
func (s Speaker) Establish(conn net.Conn) (*Session, error) {
	sess, err := s.handshake(conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("feeder: session with %v: %w", conn.RemoteAddr(), err)
	}
	return sess, nil
}

func (s Speaker) handshake(conn net.Conn) (*Session, error) {
	open, err := s.openMessage()
	if err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(open); err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(conn, 64<<10)
	typ, body, err := ReadMessage(r)
	if err != nil {
		return nil, fmt.Errorf("waiting for OPEN: %w", err)
	}
	if typ != msgOpen {
		return nil, fmt.Errorf("want OPEN, got %s", Describe(typ, body))
	}
	peer, err := parseOpen(body)
	if err != nil {
		return nil, err
	}
	if peer.as != s.AS {
		return nil, fmt.Errorf("peer is AS %d, want iBGP in AS %d", peer.as, s.AS)
	}
	if _, err := conn.Write(keepaliveMessage()); err != nil {
		return nil, err
	}
	if typ, body, err = ReadMessage(r); err != nil {
		return nil, fmt.Errorf("waiting for KEEPALIVE: %w", err)
	} else if typ != msgKeepalive {
		return nil, fmt.Errorf("want KEEPALIVE, got %s", Describe(typ, body))
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}

	sess := &Session{
		PeerAS:       peer.as,
		PeerRouterID: peer.id,
		HoldTime:     time.Duration(min(s.holdTime(), peer.holdTime)) * time.Second,
		conn:         conn,
		received:     map[netip.Prefix]struct{}{},
		done:         make(chan struct{}),
	}
	go sess.readLoop(r)
	go sess.keepaliveLoop()
	return sess, nil
}

// Send writes encoded messages (a Feed's Stream, say) in one go; the
// kernel takes them as fast as the peer reads.
func (s *Session) Send(msgs []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if _, err := s.conn.Write(msgs); err != nil {
		return fmt.Errorf("feeder: send on %s: %w", s, err)
	}
	return nil
}

// Received returns how many distinct prefixes the peer has announced so
// far and whether its End-of-RIB has arrived.
func (s *Session) Received() (prefixes int, endOfRIB bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return len(s.received), s.eor
}

// String names the session by its addresses, local first.
func (s *Session) String() string {
	return fmt.Sprintf("%v->%v (router %v)", s.conn.LocalAddr(), s.conn.RemoteAddr(), s.PeerRouterID)
}

// Done is closed when the session has ended (Close, or an error: see Err).
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended; nil while it is up or after Close.
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Close ends the session by closing the connection (the benchmarks tear
// the peer down right after, so no NOTIFICATION is owed).
func (s *Session) Close() { s.end(nil) }

func (s *Session) end(err error) {
	s.closeOnce.Do(func() {
		s.err = err
		s.conn.Close()
		close(s.done)
	})
}

func (s *Session) keepaliveLoop() {
	if s.HoldTime == 0 {
		return
	}
	tick := time.NewTicker(s.HoldTime / 3)
	defer tick.Stop()
	ka := keepaliveMessage()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
			if err := s.Send(ka); err != nil {
				s.end(err)
				return
			}
		}
	}
}

// readLoop also enforces the hold timer: a peer silent for HoldTime is gone.
func (s *Session) readLoop(r *bufio.Reader) {
	for {
		if s.HoldTime > 0 {
			if err := s.conn.SetReadDeadline(time.Now().Add(s.HoldTime)); err != nil {
				s.end(err)
				return
			}
		}
		typ, body, err := ReadMessage(r)
		if err != nil {
			s.end(fmt.Errorf("feeder: session %s: %w", s, err))
			return
		}
		switch typ {
		case msgKeepalive, msgRouteRefresh:
			// Our keepalive timer answers the peer; we hold no state to refresh.
		case msgUpdate:
			if err := s.recordUpdate(body); err != nil {
				s.end(err)
				return
			}
		default:
			s.end(fmt.Errorf("feeder: session %s: %s", s, Describe(typ, body)))
			return
		}
	}
}

// recordUpdate adds the UPDATE's announced IPv4 prefixes to the received
// set; an UPDATE without withdrawals, attributes or NLRI is End-of-RIB.
// Parsing only the NLRI field keeps the reader cheap when a route
// reflector sends hundreds of thousands of small UPDATEs.
func (s *Session) recordUpdate(body []byte) error {
	nlri, eor, err := splitUpdate(body)
	if err != nil {
		return fmt.Errorf("feeder: UPDATE on %s: %w", s, err)
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.eor = s.eor || eor
	return eachPrefix(nlri, func(p netip.Prefix) { s.received[p] = struct{}{} })
}

// splitUpdate returns the NLRI field of an UPDATE body and whether the
// UPDATE is the IPv4 End-of-RIB marker.
func splitUpdate(body []byte) (nlri []byte, eor bool, err error) {
	if len(body) < 4 {
		return nil, false, errors.New("truncated")
	}
	wlen := int(binary.BigEndian.Uint16(body))
	if 2+wlen+2 > len(body) {
		return nil, false, errors.New("bad withdrawn routes length")
	}
	alen := int(binary.BigEndian.Uint16(body[2+wlen:]))
	rest := body[4+wlen:]
	if alen > len(rest) {
		return nil, false, errors.New("bad path attribute length")
	}
	return rest[alen:], len(body) == 4, nil
}

// eachPrefix decodes IPv4 NLRI (without ADD-PATH identifiers, which the
// feeder never negotiates).
func eachPrefix(b []byte, fn func(netip.Prefix)) error {
	for len(b) > 0 {
		bits := int(b[0])
		n := nlriSize(bits) - 1
		if bits > 32 || 1+n > len(b) {
			return fmt.Errorf("bad NLRI of /%d with %d bytes left", bits, len(b)-1)
		}
		var a [4]byte
		copy(a[:], b[1:1+n])
		fn(netip.PrefixFrom(netip.AddrFrom4(a), bits))
		b = b[1+n:]
	}
	return nil
}

// ReadMessage reads one BGP message and returns its type and body.
func ReadMessage(r *bufio.Reader) (typ uint8, body []byte, err error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	l := int(binary.BigEndian.Uint16(h[16:18]))
	if l < headerLen || l > bgp.BGP_MAX_MESSAGE_LENGTH {
		return 0, nil, fmt.Errorf("bad message length %d", l)
	}
	body = make([]byte, l-headerLen)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return h[18], body, nil
}

// Describe names a message for an error, decoding NOTIFICATIONs.
func Describe(typ uint8, body []byte) string {
	if typ == msgNotification && len(body) >= 2 {
		return fmt.Sprintf("NOTIFICATION code %d subcode %d", body[0], body[1])
	}
	return fmt.Sprintf("message type %d", typ)
}

// peerOpen is what the feeder needs from the peer's OPEN.
type peerOpen struct {
	as       uint32
	id       netip.Addr
	holdTime uint16
}

// parseOpen decodes an OPEN body, taking the AS from the 4-byte AS
// capability when present.
func parseOpen(body []byte) (peerOpen, error) {
	var o bgp.BGPOpen
	if err := o.DecodeFromBytes(body); err != nil {
		return peerOpen{}, fmt.Errorf("bad OPEN: %w", err)
	}
	p := peerOpen{as: uint32(o.MyAS), id: o.ID, holdTime: o.HoldTime}
	for _, param := range o.OptParams {
		capParam, ok := param.(*bgp.OptionParameterCapability)
		if !ok {
			continue
		}
		for _, c := range capParam.Capability {
			if as4, ok := c.(*bgp.CapFourOctetASNumber); ok {
				p.as = as4.CapValue
			}
		}
	}
	return p, nil
}
