package bench

// Reusable pieces for benchmarks: prefix generation, /proc readers, a
// netlink socket living in a lab namespace (route counting, route adding,
// route watching), polling and `ip -batch`. Results and their comparison
// are in compare_test.go.
//
// Everything here acts only inside namespaces a harness.Lab created: the
// netlink sockets are created inside the namespace (and stay bound to it),
// and `ip` always gets `-n NS`.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mathbits "math/bits"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Linux constants the syscall package lacks.
const (
	solNetlink          = 270 // SOL_NETLINK
	netlinkGetStrictChk = 12  // NETLINK_GET_STRICT_CHK: lets the kernel filter dumps
	rtmgrpIPv4Route     = 0x40

	// RTPROT_BIRD: BIRD's, calico-node's and petrel's default kernel protocol.
	protoBird   = 12
	protoStatic = 4 // RTPROT_STATIC, what `ip route add ... proto static` sets
	// RTPROT_BGP: what FRR's zebra installs BGP routes with.
	protoZebraBGP = 186
	tableMain     = 254
)

// ---- prefixes ----

// genPrefixes returns n distinct consecutive prefixes of length bits carved
// from base, in address order (10.0.0.0/9, 26, 3 -> 10.0.0.0/26,
// 10.0.0.64/26, 10.0.0.128/26; fd00:1000::/96, 122, 2 -> fd00:1000::/122,
// fd00:1000::40/122). It fails if base cannot hold n of them.
func genPrefixes(base netip.Prefix, bits, n int) ([]netip.Prefix, error) {
	hostBits := base.Addr().BitLen() - bits
	if bits < base.Bits() || hostBits < 0 || hostBits >= 64 {
		return nil, fmt.Errorf("genPrefixes: /%d inside %v: need a longer length, at most 63 bits short of the address", bits, base)
	}
	if spare := bits - base.Bits(); spare < 63 && uint64(n) > uint64(1)<<spare {
		return nil, fmt.Errorf("genPrefixes: %v holds only %d /%d prefixes, want %d", base, uint64(1)<<spare, bits, n)
	}
	start := base.Masked().Addr()
	out := make([]netip.Prefix, n)
	for i := range out {
		out[i] = netip.PrefixFrom(addrPlus(start, uint64(i)<<hostBits), bits)
	}
	return out, nil
}

// addrPlus returns a + d, for an IPv4 or an IPv6 address (wrapping around
// at the family's end).
func addrPlus(a netip.Addr, d uint64) netip.Addr {
	if a.Is4() {
		return uintToAddr(addrToUint(a) + uint32(d))
	}
	b := a.As16()
	lo, carry := mathbits.Add64(binary.BigEndian.Uint64(b[8:]), d, 0)
	hi, _ := mathbits.Add64(binary.BigEndian.Uint64(b[:8]), 0, carry)
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.AddrFrom16(b)
}

// nthAddr returns base's address plus i (192.168.0.0, 5 -> 192.168.0.5).
func nthAddr(base netip.Addr, i int) netip.Addr {
	return uintToAddr(addrToUint(base) + uint32(i))
}

func addrToUint(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func uintToAddr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

// overlapsAny reports whether any of ps overlaps p. Used to assert generated
// routes stay clear of the lab's link subnets.
func overlapsAny(ps []netip.Prefix, p netip.Prefix) bool {
	return slices.ContainsFunc(ps, p.Overlaps)
}

// ---- /proc ----

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; the kernel fixes
// it at 100 for user space on every architecture Linux supports today.
const clockTicks = 100

// procCPU returns the user+system CPU time the process (all its threads)
// has used so far, from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) may contain spaces and parentheses: split after the
	// last ')'. The rest starts at field 3, so utime (14) is rest[11].
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	rest := strings.Fields(string(data[i+1:]))
	if len(rest) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	var ticks uint64
	for _, f := range rest[11:13] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %v", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// procStatusBytes returns a "kB" field of /proc/PID/status in bytes, e.g.
// "VmHWM" (peak RSS) or "VmRSS".
func procStatusBytes(pid int, field string) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		v, ok := strings.CutPrefix(line, field+":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status %s: %v", pid, field, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// procComm returns the process's command name (/proc/PID/comm).
func procComm(pid int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(data))
}

// requireComm fails b unless pid runs want. harness.Node.Start runs
// `ip netns exec NS cmd`, which execs cmd in place, so the pid is the daemon
// itself; this guards the /proc numbers against measuring a wrapper. Call it
// once the process has had time to exec.
func requireComm(b *testing.B, pid int, want string) {
	b.Helper()
	if got := procComm(pid); got != want {
		b.Fatalf("pid %d runs %q, want %q: /proc figures would not be the daemon's", pid, got, want)
	}
}

// ---- cheap route counts ----

// fibStat reads /proc/net/fib_triestat of a namespace. The kernel's per
// table "Prefixes" figure there is the number of routes (fib aliases) of
// every protocol, computed without building a netlink message per route:
// about 1 ms at 100k routes, where a dump of them all takes ~40 ms.
type fibStat struct{ f *os.File }

// openFibStat opens the namespace's fib_triestat; the file stays bound to
// the namespace, and each Routes call re-reads it.
func openFibStat(ns string) (*fibStat, error) {
	f, err := openNetFile(ns, "fib_triestat")
	if err != nil {
		return nil, err
	}
	return &fibStat{f: f}, nil
}

// openNetFile opens /proc/net/NAME as seen in namespace ns; the file stays
// bound to the namespace, and reads at offset 0 re-read it.
func openNetFile(ns, name string) (*os.File, error) {
	var f *os.File
	err := inNetns(ns, func() (err error) {
		f, err = os.Open("/proc/thread-self/net/" + name)
		return err
	})
	return f, err
}

// Routes returns the route count of a table as fib_triestat names it,
// "Main" or "Local". Until policy routing rules are added the kernel keeps
// both tables in one trie and shows it under both names, so the figure
// includes local routes: use differences against a baseline.
func (s *fibStat) Routes(table string) (int, error) {
	buf := make([]byte, 8192)
	n, err := s.f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	_, rest, ok := strings.Cut(string(buf[:n]), "\n"+table+":\n")
	if !ok {
		return 0, fmt.Errorf("fib_triestat: no table %q", table)
	}
	for line := range strings.SplitSeq(rest, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Prefixes:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("fib_triestat: no Prefixes for %q", table)
}

// Close closes the file.
func (s *fibStat) Close() error { return s.f.Close() }

// rt6Stat reads /proc/net/rt6_stats of a namespace: its fourth field is
// the number of IPv6 routes of every table and protocol (fib6 entries),
// as cheap to read as fib_triestat is for IPv4.
type rt6Stat struct{ f *os.File }

func openRt6Stat(ns string) (*rt6Stat, error) {
	f, err := openNetFile(ns, "rt6_stats")
	if err != nil {
		return nil, err
	}
	return &rt6Stat{f: f}, nil
}

// Total returns the IPv6 route count ("0009 0007 0000 000a ...": hex,
// the fourth is fib_rt_entries).
func (s *rt6Stat) Total() (int, error) {
	buf := make([]byte, 256)
	n, err := s.f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) < 4 {
		return 0, fmt.Errorf("rt6_stats: %q", buf[:n])
	}
	v, err := strconv.ParseInt(f[3], 16, 64)
	return int(v), err
}

// Close closes the file.
func (s *rt6Stat) Close() error { return s.f.Close() }

// Total is the main table's route count, for routeCounter.
func (s *fibStat) Total() (int, error) { return s.Routes("Main") }

// routeTotal is a cheap count of all of a family's routes in a namespace,
// local ones included: fibStat for IPv4, rt6Stat for IPv6.
type routeTotal interface {
	Total() (int, error)
	Close() error
}

// routeShape is the family and prefix length of a benchmark's routes.
type routeShape struct {
	AF   uint8 // syscall.AF_INET or AF_INET6
	Bits int
}

// ipv4Blocks are Calico's default IPv4 blocks, ipv6Blocks its IPv6 ones.
var (
	ipv4Blocks = routeShape{AF: syscall.AF_INET, Bits: 26}
	ipv6Blocks = routeShape{AF: syscall.AF_INET6, Bits: 122}
)

// routeCounter counts a daemon's routes (main table, one protocol, one
// family and prefix length) while they pour in, cheaply: as long as the
// kernel's total (fib_triestat or rt6_stats, minus the routes there before
// the daemon started) says the target is not reached, that total is the
// answer; the exact netlink count is only taken at the start, to see the
// first route of the daemon's own (not some other route it adds), and at
// the end, to confirm.
type routeCounter struct {
	NL       *nlConn
	Total    routeTotal
	Proto    uint8
	Shape    routeShape
	Want     int
	Baseline int // Total.Total() before the daemon started

	seen bool
}

// newRouteCounter opens what a routeCounter needs in namespace ns, for
// want routes of shape with protocol proto, and checks that none of them
// exists before the daemon starts. Call the returned function when done.
func newRouteCounter(b *testing.B, ns string, shape routeShape, proto uint8, want int) (*routeCounter, func()) {
	b.Helper()
	nl, err := dialNetlink(ns, 0)
	if err != nil {
		b.Fatal(err)
	}
	var total routeTotal
	if shape.AF == syscall.AF_INET6 {
		total, err = openRt6Stat(ns)
	} else {
		total, err = openFibStat(ns)
	}
	if err != nil {
		nl.Close()
		b.Fatal(err)
	}
	closeAll := func() { nl.Close(); total.Close() }
	if n, err := nl.CountRoutesOf(shape.AF, tableMain, proto, -1); err != nil || n != 0 {
		closeAll()
		b.Fatalf("%s has %d proto-%d routes before the daemon starts (err %v)", ns, n, proto, err)
	}
	baseline, err := total.Total()
	if err != nil {
		closeAll()
		b.Fatal(err)
	}
	return &routeCounter{NL: nl, Total: total, Proto: proto, Shape: shape, Want: want, Baseline: baseline}, closeAll
}

// Count is a count function for pollUntilCount.
func (c *routeCounter) Count() (int, error) {
	if c.seen {
		total, err := c.Total.Total()
		if err != nil {
			return 0, err
		}
		if n := total - c.Baseline; n < c.Want {
			return n, nil
		}
	}
	n, err := c.NL.CountRoutesOf(c.Shape.AF, tableMain, c.Proto, c.Shape.Bits)
	c.seen = c.seen || n > 0
	return n, err
}

// ---- polling ----

// pollResult is what pollUntilCount saw, as offsets from its start time.
type pollResult struct {
	First time.Duration // first poll with a non-zero count (0 if none)
	Done  time.Duration // first poll with count >= want (0 if none)
	Last  int           // last count seen
}

// pollUntilCount calls count every interval until it reports at least want,
// and returns when it saw that, measured from start. It gives up with an
// error after timeout (measured from start too), or as soon as alive
// returns an error (the daemon died: no point waiting the timeout out).
// The resolution is interval, so keep count cheap enough to call often.
func pollUntilCount(start time.Time, timeout, interval time.Duration, want int, count func() (int, error), alive func() error) (pollResult, error) {
	var r pollResult
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		n, err := count()
		now := time.Since(start)
		if err != nil {
			return r, err
		}
		r.Last = n
		if n > 0 && r.First == 0 {
			r.First = now
		}
		if n >= want {
			r.Done = now
			return r, nil
		}
		if err := alive(); err != nil {
			return r, err
		}
		if now > timeout {
			return r, fmt.Errorf("only %d of %d after %v", n, want, timeout)
		}
		<-tick.C
	}
}

// ---- ip -batch ----

// ipBatch runs the `ip` commands (one per line, without the leading "ip")
// in one `ip -n NS -batch -` process: thousands of link/route changes then
// cost one fork and one netlink socket instead of one each.
func ipBatch(ns string, cmds []string) error {
	var out bytes.Buffer
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip -n %s -batch (%d commands): %v\n%s", ns, len(cmds), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// ---- netlink in a namespace ----

// nlConn is a NETLINK_ROUTE socket created inside a lab namespace. A socket
// keeps the namespace it was created in, so only its creation has to switch
// namespaces; afterwards any goroutine can use it. Reads go through the Go
// poller, so Close unblocks a pending Read.
type nlConn struct {
	f   *os.File
	seq uint32
	buf []byte
}

// inNetns runs fn on an OS thread switched into the named namespace (as
// created by harness.Lab.Node). Sockets and /proc/thread-self/net files
// opened by fn stay bound to that namespace after fn returns.
func inNetns(ns string, fn func() error) error {
	ch := make(chan error, 1)
	// setns changes only the calling thread: do it on a locked thread of a
	// goroutine of our own, and if switching back fails leave the thread
	// locked so the runtime destroys it when the goroutine ends.
	go func() {
		runtime.LockOSThread()
		err, restored := inNetnsLocked(ns, fn)
		if restored {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	if err := <-ch; err != nil {
		return fmt.Errorf("in namespace %s: %w", ns, err)
	}
	return nil
}

func inNetnsLocked(ns string, fn func() error) (err error, restored bool) {
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err, true
	}
	defer self.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return err, true
	}
	defer target.Close()
	if err := setns(target); err != nil {
		return err, true
	}
	err = fn()
	if setns(self) != nil {
		return errors.New("could not switch back to the original namespace"), false
	}
	return err, true
}

// dialNetlink opens a NETLINK_ROUTE socket in the named namespace,
// subscribed to the multicast groups given.
func dialNetlink(ns string, groups uint32) (*nlConn, error) {
	fd := -1
	err := inNetns(ns, func() (err error) {
		fd, err = nlSocket(groups)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return &nlConn{f: os.NewFile(uintptr(fd), "netlink:"+ns), buf: make([]byte, 1<<20)}, nil
}

// sysSetns is setns(2)'s number, which package syscall does not export.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268, "386": 346, "riscv64": 268}[runtime.GOARCH]

func setns(f *os.File) error {
	if sysSetns == 0 {
		return fmt.Errorf("setns: syscall number unknown on %s", runtime.GOARCH)
	}
	if _, _, e := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		return fmt.Errorf("setns: %w", e)
	}
	return nil
}

func nlSocket(groups uint32) (int, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, syscall.NETLINK_ROUTE)
	if err != nil {
		return -1, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: groups}); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	// Kernel-side dump filtering (by table and protocol) makes counting
	// 100k routes cheap; best effort, counting filters again anyway.
	_ = syscall.SetsockoptInt(fd, solNetlink, netlinkGetStrictChk, 1)
	if groups != 0 {
		// A watcher must not lose notifications in a burst (root may exceed
		// rmem_max with the FORCE variant).
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20)
	}
	return fd, nil
}

// Close closes the socket.
func (c *nlConn) Close() error { return c.f.Close() }

// send sends one request with the given type, flags (NLM_F_REQUEST is
// added) and body.
func (c *nlConn) send(typ, flags uint16, body []byte) error {
	c.seq++
	msg := make([]byte, syscall.NLMSG_HDRLEN, syscall.NLMSG_HDRLEN+len(body))
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:], uint32(syscall.NLMSG_HDRLEN+len(body)))
	ne.PutUint16(msg[4:], typ)
	ne.PutUint16(msg[6:], flags|syscall.NLM_F_REQUEST)
	ne.PutUint32(msg[8:], c.seq)
	_, err := c.f.Write(append(msg, body...))
	return err
}

// receive reads messages until NLMSG_DONE or NLMSG_ERROR (an ack is an
// error of 0) and hands every other message to fn. It is the reply loop of
// a request; notifications use watchRoutes.
func (c *nlConn) receive(fn func(typ uint16, data []byte)) error {
	for {
		n, err := c.f.Read(c.buf)
		if err != nil {
			return err
		}
		done := false
		err = eachMessage(c.buf[:n], func(typ, flags uint16, data []byte) error {
			switch typ {
			case syscall.NLMSG_DONE:
				done = true
			case syscall.NLMSG_ERROR:
				done = true
				if len(data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
						return syscall.Errno(-code)
					}
				}
			default:
				fn(typ, data)
			}
			return nil
		})
		if err != nil || done {
			return err
		}
	}
}

// eachMessage walks the netlink messages of one datagram without copying.
func eachMessage(b []byte, fn func(typ, flags uint16, data []byte) error) error {
	for len(b) >= syscall.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < syscall.NLMSG_HDRLEN || l > len(b) {
			return fmt.Errorf("netlink: bad message length %d", l)
		}
		if err := fn(binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint16(b[6:]), b[syscall.NLMSG_HDRLEN:l]); err != nil {
			return err
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return nil
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// rtmsg builds a struct rtmsg (12 bytes).
func rtmsg(family, dstLen, table, proto, scope, typ uint8) []byte {
	return []byte{family, dstLen, 0, 0, table, proto, scope, typ, 0, 0, 0, 0}
}

// rtattr appends a route attribute.
func rtattr(b []byte, typ uint16, payload []byte) []byte {
	l := 4 + len(payload)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, payload...)
	return append(b, make([]byte, nlAlign(l)-l)...)
}

// CountRoutes counts the IPv4 routes of a table installed with a protocol
// and, unless dstLen is negative, with that prefix length. It is `ip -4
// route show table TABLE proto PROTO | wc -l` without formatting and parsing
// text: the kernel filters the dump and we only look at each message's
// header. The length filter keeps a daemon's other routes (BIRD also
// programs its direct routes, say) out of a count of advertised ones.
func (c *nlConn) CountRoutes(table, proto uint8, dstLen int) (int, error) {
	return c.CountRoutesOf(syscall.AF_INET, table, proto, dstLen)
}

// CountRoutesOf is CountRoutes for the routes of a family (AF_INET,
// AF_INET6).
func (c *nlConn) CountRoutesOf(family, table, proto uint8, dstLen int) (int, error) {
	if err := c.send(syscall.RTM_GETROUTE, syscall.NLM_F_DUMP, rtmsg(family, 0, table, proto, 0, 0)); err != nil {
		return 0, err
	}
	n := 0
	err := c.receive(func(typ uint16, data []byte) {
		// rtm_table is 254 for main (RTA_TABLE is only needed above 255).
		if typ == syscall.RTM_NEWROUTE && len(data) >= syscall.SizeofRtMsg && data[0] == family && data[4] == table && data[5] == proto &&
			(dstLen < 0 || int(data[1]) == dstLen) {
			n++
		}
	})
	return n, err
}

// AddRoute adds dst via gw in the main table with the given protocol, like
// `ip route add DST via GW proto PROTO`, and waits for the kernel's ack.
// Done in-process so that a latency measured from here does not include
// forking `ip`.
func (c *nlConn) AddRoute(dst netip.Prefix, gw netip.Addr, proto uint8) error {
	body := rtmsg(syscall.AF_INET, uint8(dst.Bits()), tableMain, proto, syscall.RT_SCOPE_UNIVERSE, syscall.RTN_UNICAST)
	d, g := dst.Masked().Addr().As4(), gw.As4()
	body = rtattr(body, syscall.RTA_DST, d[:])
	body = rtattr(body, syscall.RTA_GATEWAY, g[:])
	if err := c.send(syscall.RTM_NEWROUTE, syscall.NLM_F_CREATE|syscall.NLM_F_EXCL|syscall.NLM_F_ACK, body); err != nil {
		return err
	}
	if err := c.receive(func(uint16, []byte) {}); err != nil {
		return fmt.Errorf("add route %v via %v: %w", dst, gw, err)
	}
	return nil
}

// routeEvent is one IPv4 RTM_NEWROUTE notification.
type routeEvent struct {
	Prefix netip.Prefix
	Table  uint8
	Proto  uint8
	At     time.Time // when we read it
}

// routeWatcher timestamps route additions in a namespace as the kernel
// announces them, which beats polling `ip route` for latency measurements.
type routeWatcher struct {
	C    <-chan routeEvent
	conn *nlConn
	done chan struct{}
}

// watchRoutes subscribes to IPv4 route notifications in ns. Stop it with
// Close.
func watchRoutes(ns string) (*routeWatcher, error) {
	conn, err := dialNetlink(ns, rtmgrpIPv4Route)
	if err != nil {
		return nil, err
	}
	ch := make(chan routeEvent, 1024)
	w := &routeWatcher{C: ch, conn: conn, done: make(chan struct{})}
	go func() {
		defer close(ch)
		for {
			n, err := conn.f.Read(conn.buf)
			at := time.Now()
			if errors.Is(err, syscall.ENOBUFS) {
				continue // overrun: lost events show up as timeouts
			}
			if err != nil {
				return // closed
			}
			_ = eachMessage(conn.buf[:n], func(typ, _ uint16, data []byte) error {
				if typ != syscall.RTM_NEWROUTE || len(data) < syscall.SizeofRtMsg || data[0] != syscall.AF_INET {
					return nil
				}
				ev := routeEvent{Table: data[4], Proto: data[5], At: at, Prefix: netip.PrefixFrom(netip.IPv4Unspecified(), int(data[1]))}
				for a := data[syscall.SizeofRtMsg:]; len(a) >= 4; {
					l := int(binary.NativeEndian.Uint16(a))
					if l < 4 || l > len(a) {
						break
					}
					if binary.NativeEndian.Uint16(a[2:]) == syscall.RTA_DST && l == 8 {
						ev.Prefix = netip.PrefixFrom(netip.AddrFrom4([4]byte(a[4:8])), int(data[1]))
					}
					a = a[min(nlAlign(l), len(a)):]
				}
				select {
				case ch <- ev:
				case <-w.done:
				}
				return nil
			})
		}
	}()
	return w, nil
}

// Wait returns the first event for prefix with protocol proto in the main
// table, skipping others, or an error after timeout.
func (w *routeWatcher) Wait(prefix netip.Prefix, proto uint8, timeout time.Duration) (routeEvent, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-w.C:
			if !ok {
				return ev, errors.New("route watcher closed")
			}
			if ev.Prefix == prefix && ev.Proto == proto && ev.Table == tableMain {
				return ev, nil
			}
		case <-timer.C:
			return routeEvent{}, fmt.Errorf("no route %v (proto %d) within %v", prefix, proto, timeout)
		}
	}
}

// Close stops the watcher.
func (w *routeWatcher) Close() {
	close(w.done)
	w.conn.Close()
}
