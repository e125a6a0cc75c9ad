package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/kernelsync"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// Health service names, besides "" (liveness) and petrel.v1.Petrel.
const (
	HealthBGP    = "petrel.bgp"
	HealthKernel = "petrel.kernel"
)

const (
	// startupGrace is calico-node's -bird-ready window: during it every
	// peer must be up and graceful restart finished; after it one
	// Established peer is enough.
	startupGrace = 30 * time.Second
	// stuckAfter: a kernel loop that did nothing for this long is stuck
	// (it wakes at least every scan).
	stuckAfter = 30 * time.Second
)

// prober evaluates readiness and liveness from the running parts.
type prober struct {
	started time.Time
	speaker *bgp.Speaker
	kernel  *kernelsync.Sync // nil when disabled
}

func (p *prober) check(ctx context.Context) *petrelpb.GetHealthResponse {
	r := &petrelpb.GetHealthResponse{}
	r.BgpReady, r.BgpReason = p.bgpReady(time.Since(p.started))
	r.KernelReady, r.KernelReason = p.kernelReady()
	r.Live, r.LiveReason = p.live(ctx)
	return r
}

func (p *prober) bgpReady(up time.Duration) (bool, string) {
	restarting := p.kernel != nil && p.kernel.Stats.GracefulRestart.Load()
	return bgpReadiness(p.speaker.SessionStates(), up, restarting)
}

// bgpReadiness is calico-node's -bird-ready rule: no peers → ready; during
// the first startupGrace every peer must be Established and graceful
// restart finished; after it one Established peer is enough.
func bgpReadiness(states map[netip.Addr]bgp.SessionState, up time.Duration, restarting bool) (bool, string) {
	if len(states) == 0 {
		return true, "no BGP peers configured"
	}
	var down []string
	for addr, st := range states {
		if st != bgp.StateEstablished {
			down = append(down, fmt.Sprintf("%s is %s", addr, st))
		}
	}
	slices.Sort(down)
	established := len(states) - len(down)
	if up < startupGrace {
		switch {
		case len(down) > 0:
			return false, fmt.Sprintf("starting: %d of %d peers Established (%s)", established, len(states), down[0])
		case restarting:
			return false, "starting: graceful restart not finished"
		}
		return true, fmt.Sprintf("%d of %d peers Established", established, len(states))
	}
	if established == 0 {
		return false, fmt.Sprintf("no BGP session Established (%s)", down[0])
	}
	return true, fmt.Sprintf("%d of %d peers Established", established, len(states))
}

func (p *prober) kernelReady() (bool, string) {
	if p.kernel == nil {
		return true, "kernel sync disabled"
	}
	st := &p.kernel.Stats
	switch {
	case st.Reconciles.Load() == 0:
		return false, "first kernel reconcile not done yet"
	case st.Failing.Load() > 0:
		return false, fmt.Sprintf("%d routes fail to be written (see the log)", st.Failing.Load())
	}
	return true, fmt.Sprintf("%d routes in the kernel", st.FIBRoutes.Load())
}

func (p *prober) live(ctx context.Context) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.speaker.Responsive(ctx); err != nil {
		return false, "BGP speaker does not answer: " + err.Error()
	}
	if p.kernel != nil {
		if last := time.Unix(0, p.kernel.Stats.LastLoop.Load()); time.Since(last) > stuckAfter {
			return false, fmt.Sprintf("kernel sync loop idle since %s", last.Format(time.RFC3339))
		}
	}
	return true, "alive"
}

// publish keeps the standard gRPC health service in step with the probes.
func (p *prober) publish(ctx context.Context, hs *health.Server) {
	status := func(ok bool) healthpb.HealthCheckResponse_ServingStatus {
		if ok {
			return healthpb.HealthCheckResponse_SERVING
		}
		return healthpb.HealthCheckResponse_NOT_SERVING
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		r := p.check(ctx)
		hs.SetServingStatus("", status(r.Live))
		hs.SetServingStatus(HealthBGP, status(r.BgpReady))
		hs.SetServingStatus(HealthKernel, status(r.KernelReady))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
