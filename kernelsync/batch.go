package kernelsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink/nl"
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
		w.buf = append(w.buf, w.message(w.seq, &ops[i])...)
		ops[i].err = errNoAck
	}
	if err := unix.Sendto(w.fd, w.buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	for pending := len(ops); pending > 0; {
		n, _, err := unix.Recvfrom(w.fd, w.rbuf, 0)
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

// message serialises one RTM_NEWROUTE/RTM_DELROUTE request, every one with
// petrel's protocol: the kernel then also refuses to delete anyone else's.
func (w *batchWriter) message(seq uint32, op *routeOp) []byte {
	typ, flags := unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL
	switch op.kind {
	case opReplace:
		flags = unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	case opDelete:
		typ, flags = unix.RTM_DELROUTE, 0
	}
	req := nl.NewNetlinkRequest(typ, flags|unix.NLM_F_ACK)
	req.Seq = seq
	p := op.prefix
	msg := nl.NewRtMsg()
	if op.kind == opDelete {
		// Match any type and scope: a delete must find our blackholes too.
		msg = nl.NewRtDelMsg()
	}
	msg.Family = uint8(family(p))
	msg.Dst_len = uint8(p.Bits())
	msg.Protocol = w.protocol
	msg.Table = uint8(w.table)
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.RTA_DST, p.Addr().AsSlice()))
	if w.table >= 256 {
		msg.Table = unix.RT_TABLE_UNSPEC
		req.AddData(nl.NewRtAttr(unix.RTA_TABLE, nl.Uint32Attr(uint32(w.table))))
	}
	switch nhs := op.nexthop; {
	case isBlackhole(nhs):
		msg.Type = unix.RTN_BLACKHOLE
	case len(nhs) == 1:
		req.AddData(nl.NewRtAttr(unix.RTA_GATEWAY, nhs[0].gw.AsSlice()))
		req.AddData(nl.NewRtAttr(unix.RTA_OIF, nl.Uint32Attr(uint32(nhs[0].ifindex))))
	case len(nhs) > 1:
		var buf []byte
		for _, nh := range nhs {
			rtnh := &nl.RtNexthop{
				RtNexthop: unix.RtNexthop{Ifindex: int32(nh.ifindex)},
				Children:  []nl.NetlinkRequestData{nl.NewRtAttr(unix.RTA_GATEWAY, nh.gw.AsSlice())},
			}
			buf = append(buf, rtnh.Serialize()...)
		}
		req.AddData(nl.NewRtAttr(unix.RTA_MULTIPATH, buf))
	}
	return req.Serialize()
}
