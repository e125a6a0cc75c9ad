// Package services decides which Kubernetes Service addresses this node
// advertises over BGP, and assigns LoadBalancer addresses, the way
// calico-node's route generator and Calico's kube-controllers do.
//
// It owns two things and nothing else:
//
//   - the set of Service prefixes this node advertises (Advertised, pure:
//     BGPConfiguration's serviceClusterIPs / serviceExternalIPs /
//     serviceLoadBalancerIPs CIDRs, plus per-Service /32s and /128s for
//     externalTrafficPolicy Local and internalTrafficPolicy Local only
//     where this node has a ready endpoint), handed to the caller through a
//     callback;
//   - status.loadBalancer.ingress of LoadBalancer Services, assigned from
//     IPPools with allowedUses [LoadBalancer] through ipam, by one node
//     agent at a time (a Kubernetes Lease).
//
// It reads Services, EndpointSlices and this node's Node through client-go
// shared informers. It never touches BGP or the kernel itself: the daemon
// gives the prefixes to the speaker and the configured CIDRs to kernel sync
// (never programmed: kube-proxy owns Service addresses).
package services
