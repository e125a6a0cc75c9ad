package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/internal/birdshow"
)

// Bird is a BIRD 2 daemon running inside a Node.
type Bird struct {
	Node   *Node
	Proc   *Process
	Dir    string // runtime directory: bird.conf, bird.ctl, bird.pid
	Socket string // control socket for birdc
}

// StartBird writes conf and runs BIRD with it inside n, in the foreground
// (-f) so that it is tracked as a Process, with its own control socket. It
// returns once birdc gets an answer on the socket, and fails the test if
// BIRD exits first (a config error, say) or is not ready within 10s.
func StartBird(t testing.TB, n *Node, conf string) *Bird {
	t.Helper()
	dir := n.lab.runtimeDir(t, n.Name+"-bird")
	confPath := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	b := &Bird{Node: n, Dir: dir, Socket: filepath.Join(dir, "bird.ctl")}
	b.Proc = n.Start(t, "bird", "bird", "-f", "-c", confPath, "-s", b.Socket, "-P", filepath.Join(dir, "bird.pid"))
	waitReady(t, 10*time.Second, func() error {
		_, err := b.Cmd("show", "status")
		return err
	}, b.Proc)
	return b
}

// Cmd runs `birdc -s SOCKET args...` and returns its output without the
// "BIRD x.y.z ready." banner. birdc exits non-zero when BIRD rejects the
// command, which makes the error non-nil. birdc talks to BIRD over the unix
// socket only, so it does not need to run inside the namespace.
func (b *Bird) Cmd(args ...string) (string, error) {
	out, err := run("birdc", append([]string{"-s", b.Socket}, args...)...)
	return birdshow.StripBanner(out), err
}

// BirdProtocol is one row of `birdc show protocols`.
type BirdProtocol struct {
	Name, Proto, Table, State string
	// Since is when the protocol last changed state, in BIRD's "timeformat
	// protocol" (by default "15:04:05.000" today, a date before that).
	// It changes when a BGP session resets.
	Since string
	// Info is the rest of the row; for BGP the session state, possibly
	// followed by the last error ("Active Socket: Connection refused").
	Info string
}

// Protocol returns the `show protocols` row of the protocol called name.
func (b *Bird) Protocol(name string) (BirdProtocol, error) {
	out, err := b.Cmd("show", "protocols", name)
	if err != nil {
		return BirdProtocol{}, err
	}
	for _, p := range parseBirdProtocols(out) {
		if p.Name == name {
			return p, nil
		}
	}
	return BirdProtocol{}, fmt.Errorf("bird: no protocol %q in:\n%s", name, out)
}

// ProtocolState returns the first word of the protocol's Info column, which
// for a BGP protocol is its session state: "Established", "Active",
// "Connect", "Idle", "OpenSent" or "OpenConfirm". (Non-BGP protocols usually
// have no Info; use Protocol(name).State for those.)
func (b *Bird) ProtocolState(name string) (string, error) {
	p, err := b.Protocol(name)
	if err != nil {
		return "", err
	}
	state, _, _ := strings.Cut(p.Info, " ")
	return state, nil
}

// ProtocolSince returns the protocol's Since column. Comparing it before
// and after an event shows whether a BGP session was reset meanwhile.
func (b *Bird) ProtocolSince(name string) (string, error) {
	p, err := b.Protocol(name)
	return p.Since, err
}

// Routes returns `show route` (all tables) as prefix -> gateways ("via"
// addresses) of all of the prefix's routes, best route first, without
// duplicates. Prefixes whose routes have no gateway (blackhole,
// unreachable, directly connected) map to an empty slice. Note that BIRD
// shows an iBGP route as "unreachable", without gateway, while its BGP next
// hop cannot be resolved through the table (e.g. no protocol direct for the
// link).
func (b *Bird) Routes() (map[string][]string, error) {
	out, err := b.Cmd("show", "route")
	if err != nil {
		return nil, err
	}
	return birdshow.Routes(out), nil
}

// RoutesFrom is Routes for the routes one protocol brought in: what a
// single BGP neighbour announced.
func (b *Bird) RoutesFrom(protocol string) (map[string][]string, error) {
	out, err := b.Cmd("show", "route", "protocol", protocol)
	if err != nil {
		return nil, err
	}
	return birdshow.Routes(out), nil
}

// Stop stops BIRD (SIGTERM, SIGKILL after 5s) and waits for it to exit.
func (b *Bird) Stop() {
	_ = b.Proc.Stop(5 * time.Second)
}

// parseBirdProtocols parses `show protocols` output:
//
//	Name       Proto      Table      State  Since         Info
//	st         Static     master4    up     12:53:49.835
//	frr        BGP        ---        up     12:54:01.826  Established
//	gobgp      BGP        ---        start  12:53:49.835  Active        Socket: No route to host
//
// Columns are padded but not fixed (a long name shifts the row), so rows are
// split on whitespace. Since is one field, except with "timeformat protocol
// iso long" where it is "2006-01-02 15:04:05".
func parseBirdProtocols(out string) []BirdProtocol {
	var protos []BirdProtocol
	for _, line := range strings.Split(birdshow.StripBanner(out), "\n") {
		f := strings.Fields(line)
		// Skip the header, and detail lines of `show protocols all`.
		if len(f) < 5 || f[0] == "Name" || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		p := BirdProtocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3], Since: f[4]}
		rest := f[5:]
		if isBirdDate(p.Since) && len(rest) > 0 && strings.Contains(rest[0], ":") {
			p.Since += " " + rest[0]
			rest = rest[1:]
		}
		p.Info = strings.Join(rest, " ")
		protos = append(protos, p)
	}
	return protos
}

// isBirdDate reports whether s looks like "2006-01-02".
func isBirdDate(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}
