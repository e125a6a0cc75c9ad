package services

import (
	"net/netip"

	"github.com/petrel-net/petrel/datastore"
)

// Config is what the global BGPConfiguration says about Services.
type Config struct {
	ClusterIPs      []netip.Prefix
	ExternalIPs     []netip.Prefix
	LoadBalancerIPs []netip.Prefix
	// AggregateLoadBalancers: serviceLoadBalancerAggregation Enabled (the
	// default) advertises the LoadBalancerIPs CIDRs; Disabled, one host
	// prefix per assigned LoadBalancer address instead.
	AggregateLoadBalancers bool
}

// ConfigFrom reads the Service fields of BGPConfiguration "default" (Calico
// reads them from nowhere else); nil gives the empty Config. The CIDRs were
// validated by datastore; an unparsable one is skipped.
func ConfigFrom(c *datastore.BGPConfiguration) Config {
	cfg := Config{AggregateLoadBalancers: true}
	if c == nil {
		return cfg
	}
	cfg.ClusterIPs = cidrs(c.Spec.ServiceClusterIPs)
	cfg.ExternalIPs = cidrs(c.Spec.ServiceExternalIPs)
	cfg.LoadBalancerIPs = cidrs(c.Spec.ServiceLoadBalancerIPs)
	cfg.AggregateLoadBalancers = c.Spec.ServiceLoadBalancerAggregation != "Disabled"
	return cfg
}

func cidrs(blocks []datastore.ServiceIPBlock) []netip.Prefix {
	var out []netip.Prefix
	for _, b := range blocks {
		if p, err := netip.ParsePrefix(b.CIDR); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// Ranges are all configured Service CIDRs: kernel sync never programs a
// route inside them, and a route reflector passes on routes inside them.
func (c Config) Ranges() []netip.Prefix {
	return append(append(append([]netip.Prefix(nil), c.ClusterIPs...), c.ExternalIPs...), c.LoadBalancerIPs...)
}

// Enabled reports whether any Service range is configured: without one,
// nothing is advertised and no informer is needed.
func (c Config) Enabled() bool { return len(c.Ranges()) > 0 }
