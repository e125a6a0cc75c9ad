package harness

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/internal/birdshow"
)

// gobgpd's gRPC API listens on the node's own loopback: every namespace has
// its own, so the fixed port never clashes between nodes or with the host.
const (
	gobgpAPIHost = "127.0.0.1"
	gobgpAPIPort = "50051"
)

// GoBGPD is a gobgpd daemon running inside a Node.
type GoBGPD struct {
	Node *Node
	Proc *Process
	Dir  string // runtime directory: gobgpd.toml
}

// StartGoBGPD writes tomlConf and runs gobgpd with it inside n, logging in
// plain text and without the pprof listener. It returns once the API
// answers, and fails the test if gobgpd exits first or is not ready within
// 10s.
func StartGoBGPD(t testing.TB, n *Node, tomlConf string) *GoBGPD {
	t.Helper()
	dir := n.lab.runtimeDir(t, n.Name+"-gobgpd")
	confPath := filepath.Join(dir, "gobgpd.toml")
	if err := os.WriteFile(confPath, []byte(tomlConf), 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	g := &GoBGPD{Node: n, Dir: dir}
	g.Proc = n.Start(t, "gobgpd", "gobgpd", "-f", confPath, "-t", "toml",
		"--api-hosts", gobgpAPIHost+":"+gobgpAPIPort, "--log-plain", "--pprof-disable")
	waitReady(t, 10*time.Second, func() error {
		// Fails with "bgp server hasn't started yet" until the config's
		// global section is applied.
		_, err := g.CLI("global")
		return err
	}, g.Proc)
	return g
}

// CLI runs `gobgp args...` against this gobgpd, inside the namespace (the
// API is on the namespace's loopback).
func (g *GoBGPD) CLI(args ...string) (string, error) {
	return g.Node.Run(append([]string{"gobgp", "-u", gobgpAPIHost, "-p", gobgpAPIPort}, args...)...)
}

// NeighborState returns the session state with addr, normalised to the
// names BIRD and FRR use: "Established", "Active", "Connect", "Idle",
// "OpenSent", "OpenConfirm" (or "Unknown").
func (g *GoBGPD) NeighborState(addr string) (string, error) {
	nb, err := g.neighbor(addr)
	if err != nil {
		return "", err
	}
	return nb.state()
}

// NeighborUptime returns how long the session with addr has been
// established (one-second resolution); it is an error if it is not.
func (g *GoBGPD) NeighborUptime(addr string) (time.Duration, error) {
	nb, err := g.neighbor(addr)
	if err != nil {
		return 0, err
	}
	state, err := nb.state()
	if err != nil {
		return 0, err
	}
	if state != "Established" {
		return 0, fmt.Errorf("gobgp: neighbor %s is %s, not Established", addr, state)
	}
	return time.Since(time.Unix(nb.Timers.State.Uptime.Seconds, 0)), nil
}

// Routes returns the global RIB (`gobgp global rib -a ipv4|ipv6 -j`), all
// paths, as prefix -> next hops. Locally originated prefixes (next hop
// 0.0.0.0 or ::) map to an empty slice.
func (g *GoBGPD) Routes() (map[string][]string, error) {
	routes := map[string][]string{}
	for _, family := range []string{"ipv4", "ipv6"} {
		out, err := g.CLI("global", "rib", "-a", family, "-j")
		if err != nil {
			return nil, err
		}
		if err := parseGoBGPRoutes(out, routes); err != nil {
			return nil, err
		}
	}
	return routes, nil
}

func (g *GoBGPD) neighbor(addr string) (gobgpNeighbor, error) {
	var nb gobgpNeighbor
	out, err := g.CLI("neighbor", addr, "-j")
	if err != nil {
		return nb, err
	}
	if err := json.Unmarshal([]byte(out), &nb); err != nil {
		return nb, fmt.Errorf("gobgp: neighbor %s: %v in:\n%s", addr, err, out)
	}
	return nb, nil
}

// gobgpNeighbor holds the fields of `gobgp neighbor ADDR -j` the harness
// interprets.
type gobgpNeighbor struct {
	State struct {
		// The API's PeerState.SessionState enum: a number as printed by
		// gobgp 3.x (encoding/json of the protobuf struct, omitted when
		// 0), or its name should a version use protojson.
		SessionState json.RawMessage `json:"session_state"`
	} `json:"state"`
	Timers struct {
		State struct {
			Uptime struct {
				Seconds int64 `json:"seconds"` // Unix time the session came up
			} `json:"uptime"`
		} `json:"state"`
	} `json:"timers"`
}

// gobgpStates are the names of the SessionState enum values, in order.
var gobgpStates = []string{"Unknown", "Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"}

func (nb gobgpNeighbor) state() (string, error) {
	raw := strings.TrimSpace(string(nb.State.SessionState))
	if raw == "" {
		return gobgpStates[0], nil
	}
	if n, err := strconv.Atoi(raw); err == nil {
		if n < 0 || n >= len(gobgpStates) {
			return "", fmt.Errorf("gobgp: unknown session state %d", n)
		}
		return gobgpStates[n], nil
	}
	var name string
	if err := json.Unmarshal(nb.State.SessionState, &name); err != nil {
		return "", fmt.Errorf("gobgp: session state %s: %v", raw, err)
	}
	name = strings.TrimPrefix(strings.ToUpper(name), "SESSION_STATE_")
	for _, s := range gobgpStates {
		if strings.EqualFold(s, name) {
			return s, nil
		}
	}
	return "", fmt.Errorf("gobgp: unknown session state %q", name)
}

// parseGoBGPRoutes adds the paths of `gobgp global rib -j` to routes. The
// output maps each prefix to its paths; a path's next hop is in its
// NEXT_HOP (type 3) attribute for IPv4, or MP_REACH_NLRI (type 14) for
// other families.
func parseGoBGPRoutes(out string, routes map[string][]string) error {
	var rib map[string][]struct {
		Attrs []struct {
			Type    int    `json:"type"`
			Nexthop string `json:"nexthop"`
		} `json:"attrs"`
	}
	if err := json.Unmarshal([]byte(out), &rib); err != nil {
		return fmt.Errorf("gobgp: rib: %v in:\n%s", err, out)
	}
	for prefix, paths := range rib {
		birdshow.AddRoute(routes, prefix, "")
		for _, p := range paths {
			for _, a := range p.Attrs {
				if a.Type == 3 || a.Type == 14 {
					birdshow.AddRoute(routes, prefix, a.Nexthop)
				}
			}
		}
	}
	return nil
}
