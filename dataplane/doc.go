// Package dataplane programs the Linux kernel side of a petrel node: pod
// plumbing (veth pairs, proxy-ARP host interfaces, workload routes), block
// routes, the VXLAN device and tunl0 for IPIP, exactly as Calico's CNI
// plugin, felix and BIRD lay them out.
//
// It owns only what it creates: interfaces named cali* (workloads) and
// vxlan.calico and vxlan-v6.calico, tunl0's MTU and address, and kernel routes carrying the route protocol its caller
// configures for it. It must never touch links, addresses or routes with
// another owner's protocol, and every operation is bound to a network
// namespace chosen by the caller (the daemon passes its own; tests pass
// namespaces they created), so nothing is ever written to a namespace the
// caller did not name.
package dataplane
