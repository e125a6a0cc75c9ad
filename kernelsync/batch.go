package kernelsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// batchSize is how many route requests go into one sendmsg. Each request
// gets its own ack; 512 of them fit the socket buffers with room to spare.
const batchSize = 512

// routeOp is one kernel write: add (exclusive), replace, or delete.
type routeOp struct {
	prefix  netip.Prefix
	kind    opKind
	nexthop []nexthop
	err     error // set by batchWriter.run
}

type opKind int

const (
	opAdd opKind = iota
	opReplace
	opDelete
)

// routeWriter performs route writes and records each one's result.
type routeWriter interface {
	run(ops []routeOp)
	// port is the netlink port id the writes come from, which the kernel
	// puts in the notifications they cause (0 = none).
	port() uint32
	Close() error
}

// batchWriter sends route requests many to a sendmsg on its own netlink
// socket and matches the acks back to them. One request per syscall
// (what vishvananda/netlink does) costs more than the kernel's own work at
// 100k routes.
type batchWriter struct {
	fd       int
	seq      uint32
	protocol uint8
	table    int
	buf      []byte
	rbuf     []byte
}

func newBatchWriter(protocol, table int) (*batchWriter, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("kernelsync: netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("kernelsync: netlink bind: %w", err)
	}
	// Acks need not echo whole requests back.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	return &batchWriter{fd: fd, protocol: uint8(protocol), table: table, rbuf: make([]byte, 1<<16)}, nil
}

func (w *batchWriter) Close() error { return unix.Close(w.fd) }

func (w *batchWriter) port() uint32 {
	if sa, err := unix.Getsockname(w.fd); err == nil {
		if nlsa, ok := sa.(*unix.SockaddrNetlink); ok {
			return nlsa.Pid
		}
	}
	return 0
}

// run performs ops, batchSize at a time, and records each one's result.
func (w *batchWriter) run(ops []routeOp) {
	for start := 0; start < len(ops); start += batchSize {
		end := min(start+batchSize, len(ops))
		if err := w.runBatch(ops[start:end]); err != nil {
			for i := start; i < end; i++ {
				if ops[i].err == nil {
					ops[i].err = err
				}
			}
		}
	}
}

func (w *batchWriter) runBatch(ops []routeOp) error {
	w.buf = w.buf[:0]
	first := w.seq + 1
	for i := range ops {
		w.seq++
		w.buf = w.appendMessage(w.buf, w.seq, &ops[i])
		ops[i].err = errNoAck
	}
	if err := unix.Sendto(w.fd, w.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	for pending := len(ops); pending > 0; {
		n, err := unix.Read(w.fd, w.rbuf) // not Recvfrom: no sockaddr to allocate
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(w.rbuf[:n])
		if err != nil {
			return fmt.Errorf("netlink parse: %w", err)
		}
		for _, m := range msgs {
			i := int(m.Header.Seq - first)
			if m.Header.Type != unix.NLMSG_ERROR || i < 0 || i >= len(ops) || ops[i].err != errNoAck || len(m.Data) < 4 {
				continue
			}
			ops[i].err = nil
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				ops[i].err = unix.Errno(-code)
			}
			pending--
		}
	}
	return nil
}

func (k opKind) String() string {
	return [...]string{"add", "replace", "delete"}[k]
}

var errNoAck = errors.New("no ack from the kernel")

// appendMessage appends one RTM_NEWROUTE/RTM_DELROUTE request to buf,
// every one with petrel's protocol: the kernel then also refuses to delete
// anyone else's. It writes the bytes in place: building netlink attribute
// objects per route was most of the writer's garbage at 100k routes.
func (w *batchWriter) appendMessage(buf []byte, seq uint32, op *routeOp) []byte {
	typ, flags := uint16(unix.RTM_NEWROUTE), uint16(unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	rt := unix.RtMsg{Table: unix.RT_TABLE_MAIN, Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST}
	switch op.kind {
	case opReplace:
		flags = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	case opDelete:
		typ, flags = unix.RTM_DELROUTE, 0
		// Match any type and scope: a delete must find our blackholes too.
		rt = unix.RtMsg{Table: unix.RT_TABLE_MAIN, Scope: unix.RT_SCOPE_NOWHERE}
	}
	p := op.prefix
	rt.Family = uint8(family(p))
	rt.Dst_len = uint8(p.Bits())
	rt.Protocol = w.protocol
	if w.table >= 256 {
		rt.Table = unix.RT_TABLE_UNSPEC
	} else {
		rt.Table = uint8(w.table)
	}
	nhs := op.nexthop
	if isBlackhole(nhs) {
		rt.Type = unix.RTN_BLACKHOLE
	}

	start := len(buf)
	buf = binary.NativeEndian.AppendUint32(buf, 0) // length, set at the end
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = binary.NativeEndian.AppendUint16(buf, unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0) // port: the kernel fills it in
	buf = append(buf, rt.Family, rt.Dst_len, rt.Src_len, rt.Tos, rt.Table, rt.Protocol, rt.Scope, rt.Type)
	buf = binary.NativeEndian.AppendUint32(buf, rt.Flags)
	buf = appendAttr(buf, unix.RTA_DST, addrBytes(p.Addr())...)
	if w.table >= 256 {
		buf = appendAttr(buf, unix.RTA_TABLE, binary.NativeEndian.AppendUint32(nil, uint32(w.table))...)
	}
	switch {
	case isBlackhole(nhs):
	case len(nhs) == 1:
		buf = appendAttr(buf, unix.RTA_GATEWAY, addrBytes(nhs[0].gw)...)
		buf = appendUint32Attr(buf, unix.RTA_OIF, uint32(nhs[0].ifindex))
	case len(nhs) > 1:
		mp := len(buf)
		buf = appendAttrHeader(buf, unix.RTA_MULTIPATH)
		for _, nh := range nhs {
			hop := len(buf)
			// struct rtnexthop: len, flags, hops, ifindex; then its gateway.
			buf = binary.NativeEndian.AppendUint16(buf, 0)
			buf = append(buf, 0, 0)
			buf = binary.NativeEndian.AppendUint32(buf, uint32(nh.ifindex))
			buf = appendAttr(buf, unix.RTA_GATEWAY, addrBytes(nh.gw)...)
			binary.NativeEndian.PutUint16(buf[hop:], uint16(len(buf)-hop))
		}
		binary.NativeEndian.PutUint16(buf[mp:], uint16(len(buf)-mp))
	}
	binary.NativeEndian.PutUint32(buf[start:], uint32(len(buf)-start))
	return buf
}

// addrBytes returns a's 4 or 16 bytes without allocating.
func addrBytes(a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return b[:]
	}
	b := a.As16()
	return b[:]
}

// appendAttr appends one route attribute (struct rtattr and its data,
// padded to 4 bytes).
func appendAttr(buf []byte, typ uint16, data ...byte) []byte {
	buf = binary.NativeEndian.AppendUint16(buf, uint16(unix.SizeofRtAttr+len(data)))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = append(buf, data...)
	for len(buf)%unix.NLMSG_ALIGNTO != 0 {
		buf = append(buf, 0)
	}
	return buf
}

func appendUint32Attr(buf []byte, typ uint16, v uint32) []byte {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return appendAttr(buf, typ, b[:]...)
}

// appendAttrHeader starts a nested attribute; the caller sets its length.
func appendAttrHeader(buf []byte, typ uint16) []byte {
	buf = binary.NativeEndian.AppendUint16(buf, 0)
	return binary.NativeEndian.AppendUint16(buf, typ)
}
