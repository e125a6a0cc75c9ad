package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/petrel-net/petrel/internal/version"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// ErrNotReady makes `petrel health` exit 1 after its one line.
var ErrNotReady = errors.New("not ready")

// withDaemon checks the output format, connects to the daemon and runs fn.
func withDaemon(ctx context.Context, socket, output string, fn func(*Client) error) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("--output %q: must be table or json", output)
	}
	c, err := Dial(ctx, socket)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

// Status is `petrel status`: the sessions, then kernel sync and problems.
func Status(ctx context.Context, socket, output string, w io.Writer) error {
	return withDaemon(ctx, socket, output, func(c *Client) error {
		resp, err := c.ListPeers(ctx, &petrelpb.ListPeersRequest{})
		if err != nil {
			return err
		}
		if output == "json" {
			return WriteStatusJSON(w, resp.Peers)
		}
		WriteStatus(w, resp.Peers, time.Now())
		info, err := c.GetInfo(ctx, &petrelpb.GetInfoRequest{})
		if err != nil {
			return err
		}
		WriteKernel(w, info.Kernel)
		WriteServices(w, info.ServicePrefixes)
		WriteProblems(w, info.Problems)
		return nil
	})
}

// ShowRoutes is `petrel routes`: the RIB, only inside f.Within and from
// f.Peer when set.
func ShowRoutes(ctx context.Context, socket, output string, f RouteFilter, w io.Writer) error {
	if output == "yaml" {
		return ShowRIBYAML(ctx, socket, f, w)
	}
	return withDaemon(ctx, socket, output, func(c *Client) error {
		routes, err := c.Routes(ctx, f.Within)
		if err != nil {
			return err
		}
		routes = routesFromPeer(routes, f.Peer)
		if output == "json" {
			return WriteRoutesJSON(w, routes)
		}
		return WriteRoutes(w, routes)
	})
}

// ShowRIBYAML prints the RIB as YAML (the JSON document, converted).
func ShowRIBYAML(ctx context.Context, socket string, f RouteFilter, w io.Writer) error {
	var buf bytes.Buffer
	if err := ShowRoutes(ctx, socket, "json", f, &buf); err != nil {
		return err
	}
	out, err := yaml.JSONToYAML(buf.Bytes())
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// Version is `petrel version`: this binary's, then the daemon's when one
// answers within 2 s (none answering is not an error).
func Version(ctx context.Context, socket string, w io.Writer) error {
	fmt.Fprintf(w, "petrel %s (gobgp %s, %s)\n", version.String(), version.GoBGP(), runtime.Version())
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := Dial(ctx, socket)
	if err != nil {
		fmt.Fprintf(w, "daemon: %v\n", err)
		return nil
	}
	defer c.Close()
	info, err := c.GetInfo(ctx, &petrelpb.GetInfoRequest{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "daemon: petrel %s on node %s (router id %s, AS %d, %s)\n", info.Version, info.NodeName, info.RouterId, info.AsNumber, info.Mode)
	return nil
}

// HealthChecks are the checks `petrel health` is asked for.
type HealthChecks struct {
	BGPReady, KernelReady, Live bool
}

// Health is `petrel health`: one line for the asked checks, and
// ErrNotReady unless every one of them passes.
func Health(ctx context.Context, socket string, checks HealthChecks, w io.Writer) error {
	if !checks.BGPReady && !checks.KernelReady && !checks.Live {
		return errors.New("health: ask for at least one of --bgp-ready, --kernel-ready, --live")
	}
	c, err := Dial(ctx, socket)
	if err != nil {
		fmt.Fprintln(w, "not live:", err)
		return ErrNotReady
	}
	defer c.Close()
	h, err := c.GetHealth(ctx, &petrelpb.GetHealthRequest{})
	if err != nil {
		fmt.Fprintln(w, "not live:", err)
		return ErrNotReady
	}
	line, ok := healthLine(h, checks)
	fmt.Fprintln(w, line)
	if !ok {
		return ErrNotReady
	}
	return nil
}

// healthLine says, for each asked check, whether it passes and why.
func healthLine(h *petrelpb.GetHealthResponse, checks HealthChecks) (string, bool) {
	var parts []string
	ok := true
	add := func(asked, pass bool, what, reason string) {
		if !asked {
			return
		}
		state := "ready"
		if what == "live" {
			state = "live"
		}
		if !pass {
			state, ok = "not "+state, false
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", what, state, reason))
	}
	add(checks.BGPReady, h.BgpReady, "bgp", h.BgpReason)
	add(checks.KernelReady, h.KernelReady, "kernel", h.KernelReason)
	add(checks.Live, h.Live, "live", h.LiveReason)
	return strings.Join(parts, "; "), ok
}
