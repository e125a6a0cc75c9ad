package kubernetes

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/petrel-net/petrel/datastore"
)

// The annotations Calico keeps a node's BGP and tunnel settings in, on the
// core Node (Calico's libcalico-go k8s node conversion uses the same keys).
const (
	annIPv4Address             = "projectcalico.org/IPv4Address"
	annIPv6Address             = "projectcalico.org/IPv6Address"
	annASNumber                = "projectcalico.org/ASNumber"
	annRouteReflectorClusterID = "projectcalico.org/RouteReflectorClusterID"
	annIPv4VXLANTunnelAddr     = "projectcalico.org/IPv4VXLANTunnelAddr"
	annVXLANTunnelMACAddr      = "projectcalico.org/VXLANTunnelMACAddr"
	annIPv4IPIPTunnelAddr      = "projectcalico.org/IPv4IPIPTunnelAddr"
	annIPv6VXLANTunnelAddr     = "projectcalico.org/IPv6VXLANTunnelAddr"
	annVXLANTunnelMACAddrV6    = "projectcalico.org/VXLANTunnelMACAddrV6"
)

var nodeAnnotations = []string{
	annIPv4Address, annIPv6Address, annASNumber, annRouteReflectorClusterID,
	annIPv4VXLANTunnelAddr, annVXLANTunnelMACAddr, annIPv4IPIPTunnelAddr,
	annIPv6VXLANTunnelAddr, annVXLANTunnelMACAddrV6,
}

// nodeFromCore reads a petrel Node out of a core Node. Only identity,
// labels and the projectcalico.org annotations carry over: the rest of the
// core Node is the kubelet's.
func nodeFromCore(n *corev1.Node) (datastore.Object, error) {
	o, err := datastore.New(datastore.KindNode)
	if err != nil {
		return nil, err
	}
	out := o.(*datastore.Node)
	out.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: datastore.Group, Version: datastore.Version, Kind: string(datastore.KindNode)})
	out.ObjectMeta = metav1.ObjectMeta{
		Name:              n.Name,
		UID:               n.UID,
		ResourceVersion:   n.ResourceVersion,
		Generation:        n.Generation,
		CreationTimestamp: n.CreationTimestamp,
		DeletionTimestamp: n.DeletionTimestamp,
	}
	if len(n.Labels) > 0 {
		out.Labels = make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			out.Labels[k] = v
		}
	}
	a := n.Annotations
	bgp := datastore.NodeBGPSpec{
		IPv4Address:             a[annIPv4Address],
		IPv6Address:             a[annIPv6Address],
		RouteReflectorClusterID: a[annRouteReflectorClusterID],
		IPv4IPIPTunnelAddr:      a[annIPv4IPIPTunnelAddr],
	}
	if s := a[annASNumber]; s != "" {
		asn, err := parseASN(s)
		if err != nil {
			return nil, datastore.NewDecodeError(datastore.KindNode, n.Name, "metadata.annotations["+annASNumber+"]", fmt.Errorf("%q is not an AS number: %w", s, err))
		}
		bgp.ASNumber = &asn
	}
	if bgp != (datastore.NodeBGPSpec{}) {
		out.Spec.BGP = &bgp
	}
	out.Spec.IPv4VXLANTunnelAddr = a[annIPv4VXLANTunnelAddr]
	out.Spec.VXLANTunnelMACAddr = a[annVXLANTunnelMACAddr]
	out.Spec.IPv6VXLANTunnelAddr = a[annIPv6VXLANTunnelAddr]
	out.Spec.VXLANTunnelMACAddrV6 = a[annVXLANTunnelMACAddrV6]
	return out, nil
}

// applyNode writes a petrel Node's labels and projectcalico.org annotations
// onto a core Node, leaving its other annotations alone. An empty field
// removes its annotation.
func applyNode(n *corev1.Node, from *datastore.Node) {
	var bgp datastore.NodeBGPSpec
	if from.Spec.BGP != nil {
		bgp = *from.Spec.BGP
	}
	asn := ""
	if bgp.ASNumber != nil {
		asn = strconv.FormatUint(uint64(*bgp.ASNumber), 10)
	}
	values := map[string]string{
		annIPv4Address:             bgp.IPv4Address,
		annIPv6Address:             bgp.IPv6Address,
		annASNumber:                asn,
		annRouteReflectorClusterID: bgp.RouteReflectorClusterID,
		annIPv4IPIPTunnelAddr:      bgp.IPv4IPIPTunnelAddr,
		annIPv4VXLANTunnelAddr:     from.Spec.IPv4VXLANTunnelAddr,
		annVXLANTunnelMACAddr:      from.Spec.VXLANTunnelMACAddr,
		annIPv6VXLANTunnelAddr:     from.Spec.IPv6VXLANTunnelAddr,
		annVXLANTunnelMACAddrV6:    from.Spec.VXLANTunnelMACAddrV6,
	}
	for _, k := range nodeAnnotations {
		if v := values[k]; v != "" {
			if n.Annotations == nil {
				n.Annotations = map[string]string{}
			}
			n.Annotations[k] = v
		} else {
			delete(n.Annotations, k)
		}
	}
	n.Labels = nil
	if len(from.Labels) > 0 {
		n.Labels = make(map[string]string, len(from.Labels))
		for k, v := range from.Labels {
			n.Labels[k] = v
		}
	}
}

// parseASN accepts a plain number and Calico's dotted "asdot" form (1.10).
func parseASN(s string) (uint32, error) {
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err := strconv.ParseUint(hi, 10, 16)
		if err != nil {
			return 0, err
		}
		l, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return 0, err
		}
		return uint32(h<<16 | l), nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err
}

// nodeKey is what a watcher of petrel Nodes can see change.
func nodeKey(n *datastore.Node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v|%q|%q|%q|%q", n.DeletionTimestamp, n.Spec.IPv4VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddr, n.Spec.IPv6VXLANTunnelAddr, n.Spec.VXLANTunnelMACAddrV6)
	if bgp := n.Spec.BGP; bgp != nil {
		asn := ""
		if bgp.ASNumber != nil {
			asn = strconv.FormatUint(uint64(*bgp.ASNumber), 10)
		}
		fmt.Fprintf(&b, "|%q|%q|%s|%q|%q", bgp.IPv4Address, bgp.IPv6Address, asn, bgp.RouteReflectorClusterID, bgp.IPv4IPIPTunnelAddr)
	}
	fmt.Fprintf(&b, "|%v", n.Labels) // fmt sorts map keys
	return b.String()
}
