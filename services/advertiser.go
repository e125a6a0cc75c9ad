package services

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// advertiseLoop recomputes the Advertisement whenever an informer or the
// configuration marked it dirty, and hands on each one that differs from
// the last. Event handlers only mark; this loop does the work.
func (c *Controller) advertiseLoop(ctx context.Context) {
	if !cache.WaitForCacheSync(ctx.Done(), c.factory.Core().V1().Services().Informer().HasSynced,
		c.factory.Discovery().V1().EndpointSlices().Informer().HasSynced, c.nodeFactory.Core().V1().Nodes().Informer().HasSynced) {
		return
	}
	c.log.Info("Services and EndpointSlices in sync")
	var last *Advertisement
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.dirty:
		}
		cfg, ok := c.config()
		if !ok {
			continue
		}
		adv := Advertisement{Prefixes: Advertised(cfg, c.node(), c.services(), c.endpointSlices()), Ranges: cfg.Ranges()}
		if last != nil && slices.Equal(adv.Prefixes, last.Prefixes) && slices.Equal(adv.Ranges, last.Ranges) {
			continue
		}
		firstOut := last == nil
		last = &adv
		c.log.Debug("service advertisement", "prefixes", len(adv.Prefixes), "ranges", adv.Ranges)
		c.opts.Advertise(adv)
		if firstOut {
			close(c.ready)
		}
	}
}

func (c *Controller) node() Node {
	n := Node{Name: c.opts.Node}
	if obj, err := c.nodeFactory.Core().V1().Nodes().Lister().Get(c.opts.Node); err == nil {
		n.Excluded = obj.Labels[ExcludeLabel] == "true"
	}
	return n
}

func (c *Controller) services() []*corev1.Service {
	svcs, _ := c.factory.Core().V1().Services().Lister().List(labels.Everything())
	return svcs
}

// endpointSlices groups the EndpointSlices by the Service they belong to
// ("namespace/name", from the kubernetes.io/service-name label).
func (c *Controller) endpointSlices() map[string][]*discoveryv1.EndpointSlice {
	all, _ := c.factory.Discovery().V1().EndpointSlices().Lister().List(labels.Everything())
	out := map[string][]*discoveryv1.EndpointSlice{}
	for _, es := range all {
		if name := es.Labels[discoveryv1.LabelServiceName]; name != "" {
			key := es.Namespace + "/" + name
			out[key] = append(out[key], es)
		}
	}
	return out
}
