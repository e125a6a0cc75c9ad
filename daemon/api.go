package daemon

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/internal/version"
	"github.com/petrel-net/petrel/kernelsync"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// routeBatch bounds one streamed message: 1000 routes stay far below gRPC's
// 4 MB default message size.
const routeBatch = 1000

// apiServer serves petrel.v1.Petrel from the speaker's state.
type apiServer struct {
	petrelpb.UnimplementedPetrelServer
	speaker  *bgp.Speaker
	kernel   *kernelsync.Sync // nil when kernel sync is off
	prober   *prober
	nodeName string
	mode     string
	started  time.Time

	mu       sync.Mutex
	problems []string // datastore objects skipped, for status
	// snapshot reads the datastore's current objects, for explain's IPAM
	// origin (nil in standalone mode).
	snapshot func() snapshot
}

// setProblems records the current problems; it reports whether they
// changed, so that each is logged once and not on every recompute.
func (a *apiServer) setProblems(p []string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if slices.Equal(a.problems, p) {
		return false
	}
	a.problems = p
	return true
}

// newGRPCServer builds the server with the Petrel service, the standard
// health service and reflection.
func newGRPCServer(api *apiServer) (*grpc.Server, *health.Server) {
	srv := grpc.NewServer()
	petrelpb.RegisterPetrelServer(srv, api)
	hs := health.NewServer()
	// The API itself serves as soon as it listens; liveness ("") and
	// readiness (petrel.bgp, petrel.kernel) follow the prober.
	hs.SetServingStatus(petrelpb.Petrel_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return srv, hs
}

func (a *apiServer) GetInfo(ctx context.Context, _ *petrelpb.GetInfoRequest) (*petrelpb.GetInfoResponse, error) {
	cfg := a.speaker.Config()
	resp := &petrelpb.GetInfoResponse{
		NodeName: a.nodeName,
		RouterId: cfg.RouterID.String(),
		AsNumber: cfg.ASN,
		Version:  version.String(),
		Started:  timestamppb.New(a.started),
		Mode:     a.mode,
	}
	for _, p := range a.speaker.Originated() {
		resp.Originated = append(resp.Originated, p.String())
	}
	for _, p := range a.speaker.Services() {
		resp.ServicePrefixes = append(resp.ServicePrefixes, p.String())
	}
	a.mu.Lock()
	resp.Problems = slices.Clone(a.problems)
	a.mu.Unlock()
	if k := a.kernel; k != nil {
		cfg, st := k.Config(), &k.Stats
		resp.Kernel = &petrelpb.KernelStatus{
			Protocol:        uint32(cfg.Protocol),
			Table:           uint32(cfg.Table),
			FibRoutes:       uint64(st.FIBRoutes.Load()),
			Writes:          uint64(st.Writes.Load()),
			WriteErrors:     uint64(st.WriteErrors.Load()),
			Repairs:         uint64(st.Repairs.Load()),
			Reconciles:      uint64(st.Reconciles.Load()),
			GracefulRestart: st.GracefulRestart.Load(),
			StaleSwept:      uint64(st.StaleSwept.Load()),
		}
	}
	return resp, nil
}

func (a *apiServer) ListPeers(ctx context.Context, _ *petrelpb.ListPeersRequest) (*petrelpb.ListPeersResponse, error) {
	peers, err := a.speaker.Peers(ctx)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	resp := &petrelpb.ListPeersResponse{}
	for _, p := range peers {
		resp.Peers = append(resp.Peers, &petrelpb.Peer{
			Address:            p.Config.Address.String(),
			Name:               p.Config.Name,
			Type:               p.Config.Type,
			State:              p.State.String(),
			Since:              timestamppb.New(p.Since),
			Info:               p.Info,
			AsNumber:           p.Config.ASN,
			Port:               uint32(p.Config.Port),
			Passive:            p.Config.Passive,
			RouterId:           p.RemoteRouterID,
			PrefixesReceived:   p.PrefixesReceived,
			PrefixesAccepted:   p.PrefixesAccepted,
			PrefixesAdvertised: p.PrefixesAdvertised,
			Flaps:              p.Flaps,
			PasswordSet:        p.Config.Password != "",
			MaxPrefixes:        p.Config.PrefixLimit(),
			PrefixLimitHits:    p.PrefixLimitHits,
			BfdState:           p.BFD,
			BfdMinRxMs:         uint32(p.Config.BFD.MinRx.Milliseconds()),
			BfdMinTxMs:         uint32(p.Config.BFD.MinTx.Milliseconds()),
			BfdMultiplier:      uint32(p.Config.BFD.Multiplier),
			LlgrStaleTimeS:     uint32(p.Config.LongLivedStaleTime.Seconds()),
		})
	}
	return resp, nil
}

func (a *apiServer) ListRoutes(req *petrelpb.ListRoutesRequest, stream grpc.ServerStreamingServer[petrelpb.ListRoutesResponse]) error {
	var within netip.Prefix
	if req.Within != "" {
		var err error
		if within, err = netip.ParsePrefix(req.Within); err != nil {
			return status.Errorf(codes.InvalidArgument, "within: %q is not a CIDR prefix", req.Within)
		}
	}
	batch := &petrelpb.ListRoutesResponse{}
	for _, r := range a.speaker.Routes() {
		if within.IsValid() && !(within.Contains(r.Prefix.Addr()) && r.Prefix.Bits() >= within.Bits()) {
			continue
		}
		batch.Routes = append(batch.Routes, routeToProto(r))
		if len(batch.Routes) == routeBatch {
			if err := stream.Send(batch); err != nil {
				return err
			}
			batch = &petrelpb.ListRoutesResponse{}
		}
	}
	if len(batch.Routes) > 0 {
		return stream.Send(batch)
	}
	return nil
}

func (a *apiServer) WatchRoutes(req *petrelpb.WatchRoutesRequest, stream grpc.ServerStreamingServer[petrelpb.WatchRoutesResponse]) error {
	sub := a.speaker.SubscribeRoutes(req.Replay)
	defer sub.Close()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case _, ok := <-sub.Ready():
			if !ok {
				return nil
			}
		}
		batch := &petrelpb.WatchRoutesResponse{}
		var sendErr error
		sub.Drain(func(r bgp.Route) {
			if sendErr != nil {
				return
			}
			batch.Routes = append(batch.Routes, routeToProto(r))
			if len(batch.Routes) == routeBatch {
				sendErr = stream.Send(batch)
				batch = &petrelpb.WatchRoutesResponse{}
			}
		})
		if sendErr == nil && len(batch.Routes) > 0 {
			sendErr = stream.Send(batch)
		}
		if sendErr != nil {
			return sendErr
		}
	}
}

func (a *apiServer) GetHealth(ctx context.Context, _ *petrelpb.GetHealthRequest) (*petrelpb.GetHealthResponse, error) {
	return a.prober.check(ctx), nil
}

func routeToProto(r bgp.Route) *petrelpb.Route {
	out := &petrelpb.Route{Prefix: r.Prefix.String()}
	for i, p := range r.Paths {
		out.Paths = append(out.Paths, pathToProto(p, i == 0))
	}
	return out
}

func pathToProto(p bgp.Path, best bool) *petrelpb.Path {
	pp := &petrelpb.Path{
		PeerAs:      p.PeerASN,
		AsPath:      p.ASPath,
		LocalPref:   p.LocalPref,
		Local:       p.Local,
		Best:        best,
		Stale:       p.Stale,
		LlgrStale:   p.LLGRStale,
		Communities: p.Communities,
	}
	if p.NextHop.IsValid() {
		pp.NextHop = p.NextHop.String()
	}
	if p.Peer.IsValid() {
		pp.Peer = p.Peer.String()
	}
	return pp
}
