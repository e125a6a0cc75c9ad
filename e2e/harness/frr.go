package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/petrel-net/petrel/internal/birdshow"
)

// frrDaemons are the FRR daemons a BGP speaker needs: zebra (interfaces and
// the RIB, which bgpd's next-hop tracking uses), staticd (for "ip route"
// lines, e.g. blackholes that back "network" statements) and bgpd.
var frrDaemons = []string{"zebra", "staticd", "bgpd"}

const frrLibexec = "/usr/lib/frr"

// FRR is an FRR instance (zebra, staticd, bgpd) running inside a Node.
type FRR struct {
	Node *Node
	// Dir is the runtime directory, owned by user frr: frr.conf, the
	// daemons' pid files and vty sockets, and zebra's zserv.api socket.
	Dir   string
	Procs []*Process // one per daemon, in frrDaemons order, then the extras
}

// Freeze stops every daemon of the instance (see Process.Freeze).
func (f *FRR) Freeze() (thaw func()) {
	thaws := make([]func(), len(f.Procs))
	for i, p := range f.Procs {
		thaws[i] = p.Freeze()
	}
	return func() {
		for _, th := range thaws {
			th()
		}
	}
}

// StartFRR writes conf (frr.conf syntax) and runs zebra, staticd and bgpd
// with it inside n, and the extra daemons named (e.g. "bfdd"). It returns once bgpd answers through vtysh, and fails
// the test if a daemon exits first or is not ready within 10s.
//
// The config is checked with `vtysh --dryrun` first, so a typo fails the
// test with the offending line rather than being logged and ignored. Each
// daemon then reads the whole file and logs "No such command" for the
// lines meant for the others; those log lines are expected noise.
//
// The daemons run in the foreground as tracked processes and drop
// privileges to user frr, which is why the runtime directory and config are
// owned by frr and the directory lives outside t.TempDir().
func StartFRR(t testing.TB, n *Node, conf string, extra ...string) *FRR {
	t.Helper()
	uid, gid := frrOwner(t)
	dir := n.lab.runtimeDir(t, n.Name+"-frr")
	checkTraversable(t, dir)
	confPath := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o640); err != nil {
		t.Fatalf("harness: %v", err)
	}
	for _, p := range []string{dir, confPath} {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	if _, err := run("vtysh", "--dryrun", "--inputfile", confPath); err != nil {
		t.Fatalf("harness: FRR config for %s rejected: %v\nconfig:\n%s", n.Name, err, conf)
	}

	f := &FRR{Node: n, Dir: dir}
	zserv := filepath.Join(dir, "zserv.api")
	daemons := append(slices.Clone(frrDaemons), extra...)
	for _, d := range daemons {
		f.Procs = append(f.Procs, n.Start(t, d, filepath.Join(frrLibexec, d),
			"-u", "frr", "-g", "frr",
			"-i", filepath.Join(dir, d+".pid"),
			"-z", zserv,
			"--vty_socket", dir,
			"-f", confPath))
		if d == "zebra" {
			// A daemon that finds no zebra socket retries only after 10s,
			// leaving e.g. staticd's routes (and the BGP networks that
			// depend on them) missing until then. Start the others once
			// zebra listens, as FRR's init scripts do.
			waitReady(t, 10*time.Second, func() error {
				_, err := os.Stat(zserv)
				return err
			}, f.Procs...)
		}
	}
	waitReady(t, 10*time.Second, func() error {
		// vtysh silently skips daemons whose socket is not there yet, so
		// wait for all of them. A daemon reads its config before serving
		// vty commands, so bgpd answering means its config is applied.
		for _, d := range daemons {
			if _, err := os.Stat(filepath.Join(dir, d+".vty")); err != nil {
				return err
			}
		}
		_, err := f.Vtysh("show bgp summary")
		return err
	}, f.Procs...)
	return f
}

// Vtysh runs vtysh with each of cmds as a -c argument, e.g.
// Vtysh("configure terminal", "router bgp 64512", "neighbor 10.0.0.1 shutdown").
// vtysh exits non-zero on unknown or failing commands, which makes the
// error non-nil. It only talks to the daemons' unix sockets, so it does not
// need to run inside the namespace.
func (f *FRR) Vtysh(cmds ...string) (string, error) {
	args := []string{"--vty_socket", f.Dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	return run("vtysh", args...)
}

// NeighborJSON returns `show bgp neighbors ADDR json` for the neighbor, for
// fields without a dedicated method (e.g. "connectionsDropped").
func (f *FRR) NeighborJSON(addr string) (map[string]any, error) {
	var nb map[string]any
	err := f.neighbor(addr, &nb)
	return nb, err
}

// NeighborState returns the neighbor's "bgpState": "Established",
// "Active", "Connect", "Idle", "OpenSent" or "OpenConfirm".
func (f *FRR) NeighborState(addr string) (string, error) {
	var nb frrNeighbor
	err := f.neighbor(addr, &nb)
	return nb.BGPState, err
}

// NeighborUptime returns how long the session with addr has been
// established ("bgpTimerUpMsec", which FRR updates with one-second
// resolution). A session that was reset shows a smaller uptime than
// before; it is an error if the session is not established.
func (f *FRR) NeighborUptime(addr string) (time.Duration, error) {
	var nb frrNeighbor
	if err := f.neighbor(addr, &nb); err != nil {
		return 0, err
	}
	if nb.BGPState != "Established" || nb.UpMsec == nil {
		return 0, fmt.Errorf("frr: neighbor %s is %s, not Established", addr, nb.BGPState)
	}
	return time.Duration(*nb.UpMsec) * time.Millisecond, nil
}

// Routes returns the BGP tables (`show bgp ipv4|ipv6 unicast json`) as
// prefix -> next hops of the prefix's valid paths. Locally originated
// prefixes (next hop 0.0.0.0) and prefixes with only invalid paths (next
// hop unreachable) map to an empty slice; an IPv6 path can list both a
// global and a link-local next hop.
//
// The BGP table is used rather than zebra's RIB (`show ip route bgp`)
// because it shows what the peer advertised regardless of whether zebra
// selected it: a BGP route for a connected prefix, for instance, loses to
// the connected route there and would look missing.
func (f *FRR) Routes() (map[string][]string, error) {
	routes := map[string][]string{}
	for _, afi := range []string{"ipv4", "ipv6"} {
		out, err := f.Vtysh("show bgp " + afi + " unicast json")
		if err != nil {
			return nil, err
		}
		if err := parseFRRRoutes(out, routes); err != nil {
			return nil, err
		}
	}
	return routes, nil
}

// frrNeighbor holds the fields of `show bgp neighbors ADDR json` the
// harness interprets.
type frrNeighbor struct {
	BGPState string `json:"bgpState"`
	UpMsec   *int64 `json:"bgpTimerUpMsec"` // only while Established
}

// neighbor decodes the neighbor's object of `show bgp neighbors ADDR json`,
// which FRR wraps as {"ADDR": {...}}, or answers {"bgpNoSuchNeighbor": true}.
func (f *FRR) neighbor(addr string, v any) error {
	out, err := f.Vtysh("show bgp neighbors " + addr + " json")
	if err != nil {
		return err
	}
	return parseFRRNeighbor(out, addr, v)
}

func parseFRRNeighbor(out, addr string, v any) error {
	var byAddr map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &byAddr); err != nil {
		return fmt.Errorf("frr: neighbor %s: %v in:\n%s", addr, err, out)
	}
	if _, ok := byAddr["bgpNoSuchNeighbor"]; ok {
		return fmt.Errorf("frr: no neighbor %s", addr)
	}
	if len(byAddr) != 1 {
		return fmt.Errorf("frr: neighbor %s: want one neighbor in:\n%s", addr, out)
	}
	for _, raw := range byAddr {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("frr: neighbor %s: %v", addr, err)
		}
	}
	return nil
}

// parseFRRRoutes adds the routes of `show bgp <afi> unicast json` to routes.
func parseFRRRoutes(out string, routes map[string][]string) error {
	var table struct {
		Routes map[string][]struct {
			Valid    bool `json:"valid"`
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &table); err != nil {
		return fmt.Errorf("frr: routes: %v in:\n%s", err, out)
	}
	for prefix, paths := range table.Routes {
		birdshow.AddRoute(routes, prefix, "")
		for _, p := range paths {
			if !p.Valid {
				continue
			}
			for _, nh := range p.Nexthops {
				birdshow.AddRoute(routes, prefix, nh.IP)
			}
		}
	}
	return nil
}

// frrOwner returns the uid and gid of user frr, which the daemons run as.
func frrOwner(t testing.TB) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatalf("harness: FRR: %v (is the frr package installed?)", err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err == nil {
		gid, err = strconv.Atoi(u.Gid)
	}
	if err != nil {
		t.Fatalf("harness: FRR: user frr: %v", err)
	}
	return uid, gid
}

// checkTraversable fails the test unless every parent of dir is searchable
// by others, which user frr needs to reach its files (TMPDIR might point to
// a private directory).
func checkTraversable(t testing.TB, dir string) {
	t.Helper()
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("harness: FRR runs as user frr, which cannot traverse %s (mode %v); set TMPDIR to a world-searchable directory", p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return
		}
	}
}
