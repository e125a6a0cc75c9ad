package services

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/petrel-net/petrel/ipam"
)

// handlePrefix starts every LoadBalancer handle (lbHandle).
const handlePrefix = "lb-"

// collectKey is the queue item that releases the handles of Services that
// are gone.
const collectKey = ""

// resyncEvery re-checks every Service while leading: a pool added since a
// Service found none gets it an address.
const resyncEvery = 30 * time.Second

// assigner gives LoadBalancer Services their addresses while this node
// holds the Lease. Informer events only queue Service keys; one worker per
// term does the work and owns held and handleOf.
type assigner struct {
	c     *Controller
	queue atomic.Pointer[workqueue.TypedRateLimitingInterface[string]] // nil while not leading
	// term serialises terms: leader election starts the next one without
	// waiting for the last to return.
	term sync.Mutex

	held     map[string][]netip.Addr // handle -> addresses in IPAM
	handleOf map[string]string       // "namespace/name" -> its handle, to release on delete
}

func newAssigner(c *Controller) *assigner {
	a := &assigner{c: c}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			a.enqueue(key)
		}
	}
	_, _ = c.factory.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, obj any) { enqueue(obj) }, DeleteFunc: enqueue,
	})
	return a
}

func (a *assigner) enqueue(key string) {
	if q := a.queue.Load(); q != nil {
		(*q).Add(key)
	}
}

// lead assigns until ctx ends (the term is over): it rebuilds what every
// handle holds from IPAM, then works through every Service, the handles
// of Services that are gone, and the changes that follow.
func (a *assigner) lead(ctx context.Context) {
	a.term.Lock()
	defer a.term.Unlock()
	log := a.c.log
	if !cache.WaitForCacheSync(ctx.Done(), a.c.factory.Core().V1().Services().Informer().HasSynced) {
		return
	}
	for {
		held, err := a.c.opts.IPAM.HandlesWithPrefix(ctx, handlePrefix)
		if err == nil {
			a.held, a.handleOf = held, map[string]string{}
			break
		}
		log.Warn("reading LoadBalancer allocations; retrying", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	a.queue.Store(&q)
	defer a.queue.Store(nil)
	go func() {
		t := time.NewTicker(resyncEvery)
		defer t.Stop()
		for {
			a.enqueueAll()
			select {
			case <-ctx.Done():
				q.ShutDown()
				return
			case <-t.C:
			}
		}
	}()
	log.Info("assigning LoadBalancer addresses", "handles", len(a.held))
	for {
		key, quit := q.Get()
		if quit {
			return
		}
		if err := a.sync(ctx, key); err != nil && ctx.Err() == nil {
			log.Warn("LoadBalancer address; retrying", "service", key, "err", err)
			q.AddRateLimited(key)
		} else {
			q.Forget(key)
		}
		q.Done(key)
	}
}

func (a *assigner) enqueueAll() {
	svcs, _ := a.c.factory.Core().V1().Services().Lister().List(labels.Everything())
	for _, svc := range svcs {
		a.enqueue(svc.Namespace + "/" + svc.Name)
	}
	a.enqueue(collectKey)
}

// sync makes one Service's addresses in IPAM and in its status what it
// asks for.
func (a *assigner) sync(ctx context.Context, key string) error {
	if key == collectKey {
		return a.collect(ctx)
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := a.c.factory.Core().V1().Services().Lister().Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		if h, ok := a.handleOf[key]; ok {
			delete(a.handleOf, key)
			return a.releaseAll(ctx, h)
		}
		return nil
	}
	if err != nil {
		return err
	}
	h := lbHandle(svc)
	if old, ok := a.handleOf[key]; ok && old != h { // deleted and re-created
		a.c.log.Info("Service re-created", "service", key, "old", old, "new", h)
		if err := a.releaseAll(ctx, old); err != nil {
			return err
		}
	}
	a.handleOf[key] = h
	if !managed(svc) {
		gone := a.held[h]
		if err := a.releaseAll(ctx, h); err != nil {
			return err
		}
		return a.setStatus(ctx, svc, gone, nil)
	}
	pools, err := a.c.opts.IPAM.PoolsFor(ctx, ipam.UseLoadBalancer)
	if err != nil || len(pools) == 0 {
		return err // no LoadBalancer pool: nothing to assign (the resync retries)
	}
	req, err := parseRequest(svc, pools)
	if err != nil {
		a.c.log.Warn("LoadBalancer Service ignored", "service", key, "err", err)
		return nil
	}
	before := slices.Clone(a.held[h])
	if err := a.fulfil(ctx, svc, h, req); err != nil {
		return err
	}
	return a.setStatus(ctx, svc, before, a.held[h])
}

// fulfil releases the handle's addresses the request no longer wants and
// assigns the missing ones.
func (a *assigner) fulfil(ctx context.Context, svc *corev1.Service, h string, req lbRequest) error {
	var drop []netip.Addr
	for _, addr := range a.held[h] {
		if !req.keeps(addr) {
			drop = append(drop, addr)
		}
	}
	if err := a.releaseSome(ctx, h, drop); err != nil {
		return err
	}
	args := ipam.AssignArgs{Node: ipam.VirtualLoadBalancer, Handle: h, Use: ipam.UseLoadBalancer, Pools: req.pools, Attrs: map[string]string{
		"service": svc.Name, "namespace": svc.Namespace, "type": string(svc.Spec.Type), "timestamp": time.Now().UTC().String(),
	}}
	for _, want := range req.addrs {
		if slices.Contains(a.held[h], want) {
			continue
		}
		if err := a.c.opts.IPAM.AssignIPFor(ctx, args, want); err != nil {
			return err
		}
		a.held[h] = append(a.held[h], want)
	}
	if len(req.addrs) > 0 {
		return nil
	}
	has := func(v6 bool) bool {
		return slices.ContainsFunc(a.held[h], func(x netip.Addr) bool { return x.Is6() == v6 })
	}
	args.Num4, args.Num6 = boolInt(req.v4 && !has(false)), boolInt(req.v6 && !has(true))
	if args.Num4+args.Num6 == 0 {
		return nil
	}
	got, err := a.c.opts.IPAM.AutoAssign(ctx, args)
	if err != nil {
		return err
	}
	a.held[h] = append(a.held[h], got...)
	a.c.log.Info("LoadBalancer address assigned", "service", svc.Namespace+"/"+svc.Name, "handle", h, "addresses", got)
	return nil
}

// releaseAll frees every address of handle h.
func (a *assigner) releaseAll(ctx context.Context, h string) error {
	if len(a.held[h]) == 0 {
		return nil
	}
	if _, err := a.c.opts.IPAM.ReleaseByHandle(ctx, h); err != nil {
		return err
	}
	a.c.log.Info("LoadBalancer addresses released", "handle", h, "addresses", a.held[h])
	delete(a.held, h)
	return nil
}

// releaseSome frees addrs of handle h.
func (a *assigner) releaseSome(ctx context.Context, h string, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	if _, err := a.c.opts.IPAM.ReleaseIPs(ctx, addrs...); err != nil {
		return err
	}
	a.c.log.Info("LoadBalancer addresses released", "handle", h, "addresses", addrs)
	a.held[h] = slices.DeleteFunc(a.held[h], func(x netip.Addr) bool { return slices.Contains(addrs, x) })
	return nil
}

// collect releases the handles of Services that no longer exist (deleted
// while no node was assigning, or before this term's first sync).
func (a *assigner) collect(ctx context.Context) error {
	svcs, err := a.c.factory.Core().V1().Services().Lister().List(labels.Everything())
	if err != nil {
		return err
	}
	live := map[string]bool{}
	for _, svc := range svcs {
		live[lbHandle(svc)] = true
	}
	var errs []error
	for h := range a.held {
		if !live[h] {
			a.c.log.Info("collecting LoadBalancer handle of a Service that is gone", "handle", h)
			errs = append(errs, a.releaseAll(ctx, h))
		}
	}
	return errors.Join(errs...)
}

// setStatus replaces the addresses petrel assigned before (old) by now in
// svc's status.loadBalancer.ingress, keeping entries it did not assign.
func (a *assigner) setStatus(ctx context.Context, svc *corev1.Service, old, now []netip.Addr) error {
	var ingress []corev1.LoadBalancerIngress
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if addr, err := netip.ParseAddr(in.IP); err != nil || !slices.Contains(old, addr) && !slices.Contains(now, addr) {
			ingress = append(ingress, in)
		}
	}
	sorted := slices.Clone(now)
	slices.SortFunc(sorted, netip.Addr.Compare)
	for _, addr := range sorted {
		ingress = append(ingress, corev1.LoadBalancerIngress{IP: addr.String()})
	}
	if slices.EqualFunc(ingress, svc.Status.LoadBalancer.Ingress, func(x, y corev1.LoadBalancerIngress) bool { return x.IP == y.IP && x.Hostname == y.Hostname }) {
		return nil
	}
	upd := svc.DeepCopy()
	upd.Status.LoadBalancer.Ingress = ingress
	if _, err := a.c.opts.Client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("status of %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
