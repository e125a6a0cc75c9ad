package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/petrel-net/petrel/e2e/harness"
)

// TestListenPortChangedLive: the default BGPConfiguration's listenPort goes
// from 179 to 1790 on running nodes. GoBGP opens its listener only when it
// starts, so each node restarts in place (same process, exec'd again) with
// graceful restart: the mesh comes back on the new port and no node's FIB
// loses the other's block meanwhile.
func TestListenPortChangedLive(t *testing.T) {
	c := newClusterLab(t, 2, seedPool)
	c.waitSessions(t, map[int][]string{1: others(1, 1, 2), 2: others(2, 1, 2)})
	for i, n := range c.nodes {
		n.MustRun(t, "ip", "route", "add", "blackhole", blockOf(i+1), "proto", "static")
	}
	c.waitRoutesEverywhere(t)
	events := c.nodes[0].WatchRoutes(t)
	pids := []int{c.nodes[0].proc.Cmd.Process.Pid, c.nodes[1].proc.Cmd.Process.Pid}

	start := time.Now()
	c.apply(t, "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: default}\nspec: {listenPort: 1790}\n")
	harness.Eventually(t, 60*time.Second, 200*time.Millisecond, func() error {
		for i, n := range c.nodes {
			if out, _ := n.Run("ss", "-Hltn", "sport", "= :1790"); !strings.Contains(out, ":1790") {
				return fmt.Errorf("node%d does not listen on port 1790 yet", i+1)
			}
			up, err := sessions(n)
			if err != nil {
				return err
			}
			if p := up[fmt.Sprintf("10.0.0.%d", 2-i)]; p == nil {
				return fmt.Errorf("node%d: mesh session not Established", i+1)
			}
		}
		return nil
	}, "the mesh on port 1790")
	t.Logf("listenPort applied and the mesh back in %v", time.Since(start).Round(time.Millisecond))

	for i, n := range c.nodes {
		if pid := n.proc.Cmd.Process.Pid; pid != pids[i] || n.proc.Exited() {
			t.Errorf("node%d: petrel exited (pid %d, was %d); want the same process exec'd again", i+1, pid, pids[i])
		}
		if !strings.Contains(n.proc.Log(), "restarting in place") {
			t.Errorf("node%d: no restart in place logged", i+1)
		}
		if out, _ := n.Run("ss", "-Hltn", "sport", "= :179"); strings.Contains(out, ":179 ") {
			t.Errorf("node%d still listens on 179: %s", i+1, out)
		}
	}
	block2 := netip.MustParsePrefix(blockOf(2))
	for len(events) > 0 {
		if ev := <-events; ev.Dst == block2 && ev.Deleted {
			t.Errorf("node1's FIB lost node2's block during the restart")
		}
	}
	c.waitRoutesEverywhere(t)
}
