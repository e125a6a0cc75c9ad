// Package e2e holds petrel's end-to-end tests: real petrel daemons in
// network namespaces, peering with each other and with BIRD 2, FRR and
// gobgpd. They need root; without it every test skips with a message.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/cli"
	"github.com/petrel-net/petrel/e2e/harness"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// petrelBin is the daemon binary built once for the whole run.
var petrelBin string

func TestMain(m *testing.M) { os.Exit(harness.RunWithPetrel(m, &petrelBin)) }

// peerSpec is one entry of a petrel config's peers list.
type peerSpec struct {
	Address string
	AS      uint32
	Extra   string // more YAML keys for the entry, e.g. "port: 1179"
}

// petrelConfig renders a standalone config file.
func petrelConfig(name, routerID string, as uint32, peers []peerSpec, originate ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "nodeName: %s\nrouterID: %s\nasNumber: %d\nlogLevel: debug\npeers:\n", name, routerID, as)
	for _, p := range peers {
		fmt.Fprintf(&b, "  - address: %s\n    asNumber: %d\n", p.Address, p.AS)
		if p.Extra != "" {
			fmt.Fprintf(&b, "    %s\n", p.Extra)
		}
	}
	if len(peers) == 0 {
		b.WriteString("  []\n")
	}
	fmt.Fprintf(&b, "originate: [%s]\n", strings.Join(originate, ", "))
	return b.String()
}

// petrelNode is a petrel daemon running in a lab node.
type petrelNode struct {
	*harness.Node
	t      testing.TB
	proc   *harness.Process
	config string
	socket string
	args   []string // the command that starts the daemon in the node
}

// startPetrel writes cfg and runs `petrel daemon` in n until its API answers.
func startPetrel(t testing.TB, lab *harness.Lab, n *harness.Node, cfg string) *petrelNode {
	t.Helper()
	return startPetrelUnder(t, lab, n, cfg)
}

// startPetrelUnder is startPetrel with the daemon run by wrapper (a command
// and its arguments, such as setpriv's).
func startPetrelUnder(t testing.TB, lab *harness.Lab, n *harness.Node, cfg string, wrapper ...string) *petrelNode {
	t.Helper()
	p := &petrelNode{
		Node:   n,
		t:      t,
		config: filepath.Join(lab.Dir(), n.Name+".yaml"),
		socket: filepath.Join(lab.Dir(), n.Name+".sock"),
	}
	p.args = append(wrapper, petrelBin, "daemon", "--config", p.config, "--socket", p.socket)
	p.writeConfig(cfg)
	p.start()
	return p
}

// startPetrelFromDatastore runs `petrel daemon` in datastore mode, with
// calico-node's environment (NODENAME, IP, DATASTORE_TYPE, ...).
func startPetrelFromDatastore(t testing.TB, lab *harness.Lab, n *harness.Node, env ...string) *petrelNode {
	t.Helper()
	p := &petrelNode{Node: n, t: t, socket: filepath.Join(lab.Dir(), n.Name+".sock")}
	p.args = append(append([]string{"env"}, env...), petrelBin, "daemon", "--socket", p.socket)
	p.start()
	return p
}

func (p *petrelNode) writeConfig(cfg string) {
	p.t.Helper()
	if err := os.WriteFile(p.config, []byte(cfg), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

func (p *petrelNode) start() {
	p.t.Helper()
	p.proc = p.Start(p.t, "petrel", p.args...)
	harness.Eventually(p.t, 10*time.Second, 50*time.Millisecond, func() error {
		if p.proc.Exited() {
			return fmt.Errorf("petrel exited:\n%s", p.proc.Log())
		}
		c, err := cli.Dial(context.Background(), p.socket)
		if err != nil {
			return err
		}
		return c.Close()
	}, "petrel API on %s", p.Name)
}

// withClient runs fn with a fresh API connection (the daemon may have
// restarted since the last call).
func withClient[T any](p *petrelNode, fn func(*cli.Client) (T, error)) (T, error) {
	c, err := cli.Dial(context.Background(), p.socket)
	if err != nil {
		var zero T
		return zero, err
	}
	defer c.Close()
	return fn(c)
}

// peer returns petrel's status row for addr.
func (p *petrelNode) peer(addr string) (*petrelpb.Peer, error) {
	resp, err := withClient(p, func(c *cli.Client) (*petrelpb.ListPeersResponse, error) {
		return c.ListPeers(context.Background(), &petrelpb.ListPeersRequest{})
	})
	if err != nil {
		return nil, err
	}
	for _, peer := range resp.Peers {
		if peer.Address == addr {
			return peer, nil
		}
	}
	return nil, fmt.Errorf("%s has no peer %s", p.Name, addr)
}

// PeerState is petrel's BGP state for addr, in the shape the harness's
// peer daemons use (state, error).
func (p *petrelNode) PeerState(addr string) (string, error) {
	peer, err := p.peer(addr)
	if err != nil {
		return "", err
	}
	return peer.State, nil
}

// Routes lists petrel's RIB as prefix -> next hops (best first), the shape
// the harness's peer daemons use.
func (p *petrelNode) Routes() (map[string][]string, error) {
	return withClient(p, listRoutes)
}

func listRoutes(c *cli.Client) (map[string][]string, error) {
	routes, err := c.Routes(context.Background(), "")
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, r := range routes {
		for _, path := range r.Paths {
			out[r.Prefix] = append(out[r.Prefix], path.NextHop)
		}
	}
	return out, nil
}

// established waits until state(addr) says Established.
func established(t testing.TB, who string, state func(string) (string, error), addr string) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, 100*time.Millisecond, func() error {
		s, err := state(addr)
		if err != nil {
			return err
		}
		if !strings.EqualFold(s, "Established") {
			return fmt.Errorf("%s: session to %s is %s", who, addr, s)
		}
		return nil
	}, "%s: session to %s Established", who, addr)
}

// hasRoute waits until routes() holds prefix, via nextHop when given.
func hasRoute(t testing.TB, who string, routes func() (map[string][]string, error), prefix, nextHop string) {
	t.Helper()
	harness.Eventually(t, 10*time.Second, 100*time.Millisecond, func() error {
		rs, err := routes()
		if err != nil {
			return err
		}
		hops, ok := rs[prefix]
		if !ok {
			return fmt.Errorf("%s: no route %s (have %v)", who, prefix, rs)
		}
		if nextHop != "" && !slices.Contains(hops, nextHop) {
			return fmt.Errorf("%s: %s via %v, want via %s", who, prefix, hops, nextHop)
		}
		return nil
	}, "%s has %s", who, prefix)
}

// lacksRoute fails if routes() holds prefix.
func lacksRoute(t testing.TB, who string, routes func() (map[string][]string, error), prefix string) {
	t.Helper()
	rs, err := routes()
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	if hops, ok := rs[prefix]; ok {
		t.Fatalf("%s leaked: it has %s via %v", who, prefix, hops)
	}
}

// clientT and bg keep the e2e helpers short.
type clientT = cli.Client

func bg() context.Context { return context.Background() }
