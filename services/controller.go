package services

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/petrel-net/petrel/ipam"
)

// Options configure Start.
type Options struct {
	Client kubernetes.Interface
	// Node is this node's name, as in EndpointSlices' nodeName.
	Node string
	// IPAM assigns LoadBalancer addresses; nil: this node only advertises.
	IPAM *ipam.Client
	// LeaseNamespace holds the Lease that elects the one assigner
	// ("" = kube-system).
	LeaseNamespace string
	// Advertise receives every new Advertisement, from one goroutine.
	Advertise func(Advertisement)
	Logger    *slog.Logger
}

// Advertisement is what this node should do with Service addresses.
type Advertisement struct {
	Prefixes []netip.Prefix // advertised by this node
	Ranges   []netip.Prefix // every configured Service CIDR: never programmed
}

// Controller follows Services and EndpointSlices; see Start.
type Controller struct {
	opts    Options
	log     *slog.Logger
	factory informers.SharedInformerFactory
	// nodeFactory watches this node's Node only (its exclusion label).
	nodeFactory informers.SharedInformerFactory
	dirty       chan struct{} // one token: recompute the advertisement
	ready       chan struct{} // closed once the first Advertisement is out

	mu     sync.Mutex
	cfg    Config
	hasCfg bool // SetConfig has been called: nothing is advertised before
}

// Start runs the informers (one shared factory, resync off), the loop that
// recomputes this node's Advertisement, and, when opts.IPAM is set, the
// leader-elected LoadBalancer assigner, until ctx ends.
func Start(ctx context.Context, opts Options) *Controller {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Controller{
		opts:    opts,
		log:     opts.Logger.With("component", "services"),
		factory: informers.NewSharedInformerFactory(opts.Client, 0),
		nodeFactory: informers.NewSharedInformerFactoryWithOptions(opts.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "metadata.name=" + opts.Node
		})),
		dirty: make(chan struct{}, 1),
		ready: make(chan struct{}),
	}
	mark := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.markDirty() },
		UpdateFunc: func(any, any) { c.markDirty() },
		DeleteFunc: func(any) { c.markDirty() },
	}
	for _, inf := range []cache.SharedIndexInformer{
		c.factory.Core().V1().Services().Informer(),
		c.factory.Discovery().V1().EndpointSlices().Informer(),
		c.nodeFactory.Core().V1().Nodes().Informer(),
	} {
		_, _ = inf.AddEventHandler(mark)
	}
	var lb *assigner
	if opts.IPAM != nil {
		lb = newAssigner(c)
	}
	c.factory.Start(ctx.Done())
	c.nodeFactory.Start(ctx.Done())
	go c.advertiseLoop(ctx)
	if lb != nil {
		go lb.elect(ctx)
	}
	return c
}

// SetConfig hands the controller the current BGPConfiguration settings.
func (c *Controller) SetConfig(cfg Config) {
	c.mu.Lock()
	c.cfg, c.hasCfg = cfg, true
	c.mu.Unlock()
	c.markDirty()
}

// Ready is closed once the first Advertisement, computed from synced
// informers and a configuration, has been handed to Options.Advertise. The
// daemon holds its first peers back until then, so that the End-of-RIB a
// restarted node sends already follows its Service prefixes.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

func (c *Controller) config() (Config, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg, c.hasCfg
}

func (c *Controller) markDirty() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}
