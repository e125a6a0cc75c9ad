package datastore

import (
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group, Version and APIVersion of every resource, as Calico's CRDs.
const (
	Group      = "crd.projectcalico.org"
	Version    = "v1"
	APIVersion = Group + "/" + Version
)

// Kind names a resource type.
type Kind string

// The resources petrel reads and writes.
const (
	KindNode             Kind = "Node"
	KindIPPool           Kind = "IPPool"
	KindIPAMBlock        Kind = "IPAMBlock"
	KindIPAMHandle       Kind = "IPAMHandle"
	KindBlockAffinity    Kind = "BlockAffinity"
	KindIPAMConfig       Kind = "IPAMConfig"
	KindBGPPeer          Kind = "BGPPeer"
	KindBGPConfiguration Kind = "BGPConfiguration"
	KindBFDConfiguration Kind = "BFDConfiguration"
	KindBGPFilter        Kind = "BGPFilter"
)

// Kinds lists every kind.
var Kinds = []Kind{KindNode, KindIPPool, KindIPAMBlock, KindIPAMHandle, KindBlockAffinity, KindIPAMConfig, KindBGPPeer, KindBGPConfiguration, KindBFDConfiguration, KindBGPFilter}

// Plural is the lower-case plural used in URLs and etcd keys ("ippools").
func (k Kind) Plural() string {
	switch k {
	case KindBlockAffinity:
		return "blockaffinities"
	}
	return strings.ToLower(string(k)) + "s"
}

// ParseKind accepts a kind as users type it: "IPPool", "ippool", "ippools".
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if strings.EqualFold(s, string(k)) || strings.EqualFold(s, k.Plural()) {
			return k, nil
		}
	}
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown kind %q (kinds: %s)", s, strings.Join(names, ", "))
}

// Object is any resource.
type Object interface {
	metav1.Object
	GetObjectKind() schema.ObjectKind
	Kind() Kind
	// Validate reports the first invalid field, naming kind, object, field
	// and value.
	Validate() error
}

// New returns an empty object of kind, with its type meta set.
func New(kind Kind) (Object, error) {
	tm := metav1.TypeMeta{APIVersion: APIVersion, Kind: string(kind)}
	switch kind {
	case KindNode:
		return &Node{TypeMeta: tm}, nil
	case KindIPPool:
		return &IPPool{TypeMeta: tm}, nil
	case KindIPAMBlock:
		return &IPAMBlock{TypeMeta: tm}, nil
	case KindIPAMHandle:
		return &IPAMHandle{TypeMeta: tm}, nil
	case KindBlockAffinity:
		return &BlockAffinity{TypeMeta: tm}, nil
	case KindIPAMConfig:
		return &IPAMConfig{TypeMeta: tm}, nil
	case KindBGPPeer:
		return &BGPPeer{TypeMeta: tm}, nil
	case KindBGPConfiguration:
		return &BGPConfiguration{TypeMeta: tm}, nil
	case KindBFDConfiguration:
		return &BFDConfiguration{TypeMeta: tm}, nil
	case KindBGPFilter:
		return &BGPFilter{TypeMeta: tm}, nil
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// Node is a Calico node: its BGP addresses and tunnel addresses.
type Node struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NodeSpec `json:"spec,omitempty"`
}

type NodeSpec struct {
	BGP                 *NodeBGPSpec `json:"bgp,omitempty"`
	IPv4VXLANTunnelAddr string       `json:"ipv4VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddr  string       `json:"vxlanTunnelMACAddr,omitempty"`
	// The IPv6 VXLAN endpoint (vxlan-v6.calico), Calico's fields.
	IPv6VXLANTunnelAddr  string `json:"ipv6VXLANTunnelAddr,omitempty"`
	VXLANTunnelMACAddrV6 string `json:"vxlanTunnelMACAddrV6,omitempty"`
}

type NodeBGPSpec struct {
	ASNumber                *uint32 `json:"asNumber,omitempty"`
	IPv4Address             string  `json:"ipv4Address,omitempty"` // CIDR form: 10.0.0.5/24
	IPv6Address             string  `json:"ipv6Address,omitempty"`
	IPv4IPIPTunnelAddr      string  `json:"ipv4IPIPTunnelAddr,omitempty"`
	RouteReflectorClusterID string  `json:"routeReflectorClusterID,omitempty"`
}

// IPPool is a range pods take their addresses from.
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPPoolSpec `json:"spec,omitempty"`
}

type IPPoolSpec struct {
	CIDR             string   `json:"cidr"`
	VXLANMode        string   `json:"vxlanMode,omitempty"` // Always, CrossSubnet, Never
	IPIPMode         string   `json:"ipipMode,omitempty"`
	NATOutgoing      bool     `json:"natOutgoing,omitempty"`
	Disabled         bool     `json:"disabled,omitempty"`
	DisableBGPExport bool     `json:"disableBGPExport,omitempty"`
	BlockSize        int      `json:"blockSize,omitempty"`
	NodeSelector     string   `json:"nodeSelector,omitempty"`
	AllowedUses      []string `json:"allowedUses,omitempty"` // Workload, Tunnel, LoadBalancer
}

// IPAMBlock is one block of a pool, affine to a node.
type IPAMBlock struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPAMBlockSpec `json:"spec,omitempty"`
}

type IPAMBlockSpec struct {
	CIDR     string  `json:"cidr"`
	Affinity *string `json:"affinity,omitempty"` // "host:<node>"
	// Allocations has one slot per address: nil = free, else an index
	// into Attributes.
	Allocations                 []*int                `json:"allocations"`
	Unallocated                 []int                 `json:"unallocated"`
	Attributes                  []AllocationAttribute `json:"attributes"`
	SequenceNumber              uint64                `json:"sequenceNumber,omitempty"`
	SequenceNumberForAllocation map[string]uint64     `json:"sequenceNumberForAllocation,omitempty"`
	Deleted                     bool                  `json:"deleted"`
	StrictAffinity              bool                  `json:"strictAffinity"`
}

type AllocationAttribute struct {
	HandleID  *string           `json:"handle_id,omitempty"`
	Secondary map[string]string `json:"secondary,omitempty"`
}

// IPAMHandle counts a handle's addresses per block.
type IPAMHandle struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPAMHandleSpec `json:"spec,omitempty"`
}

type IPAMHandleSpec struct {
	HandleID string         `json:"handleID"`
	Block    map[string]int `json:"block"`
	Deleted  bool           `json:"deleted"`
}

// BlockAffinity ties a block to a node.
type BlockAffinity struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BlockAffinitySpec `json:"spec,omitempty"`
}

type BlockAffinitySpec struct {
	State string `json:"state"` // pending, confirmed, pendingDeletion
	Node  string `json:"node"`
	CIDR  string `json:"cidr"`
	// Deleted is a string in Calico's CRD ("false").
	Deleted string `json:"deleted"`
}

// IPAMConfig is the global IPAM settings (name "default").
type IPAMConfig struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPAMConfigSpec `json:"spec,omitempty"`
}

type IPAMConfigSpec struct {
	StrictAffinity     bool `json:"strictAffinity"`
	AutoAllocateBlocks bool `json:"autoAllocateBlocks"`
	MaxBlocksPerHost   int  `json:"maxBlocksPerHost,omitempty"`
}

// BGPPeer is a BGP peering for all nodes or some.
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BGPPeerSpec `json:"spec,omitempty"`
}

type BGPPeerSpec struct {
	Node                     string           `json:"node,omitempty"`
	PeerIP                   string           `json:"peerIP,omitempty"` // address or address:port
	ASNumber                 uint32           `json:"asNumber,omitempty"`
	NodeSelector             string           `json:"nodeSelector,omitempty"`
	PeerSelector             string           `json:"peerSelector,omitempty"`
	LocalASNumber            *uint32          `json:"localASNumber,omitempty"`
	KeepOriginalNextHop      bool             `json:"keepOriginalNextHop,omitempty"`
	NextHopMode              string           `json:"nextHopMode,omitempty"`
	Password                 *BGPPassword     `json:"password,omitempty"`
	SourceAddress            string           `json:"sourceAddress,omitempty"` // UseNodeIP (default), None
	MaxRestartTime           *metav1.Duration `json:"maxRestartTime,omitempty"`
	KeepaliveTime            *metav1.Duration `json:"keepaliveTime,omitempty"`
	NumAllowedLocalASNumbers *int32           `json:"numAllowedLocalASNumbers,omitempty"`
	TTLSecurity              *uint8           `json:"ttlSecurity,omitempty"`
	ReachableBy              string           `json:"reachableBy,omitempty"`
	Filters                  []string         `json:"filters,omitempty"`
	LocalWorkloadSelector    string           `json:"localWorkloadSelector,omitempty"`
	ReversePeering           string           `json:"reversePeering,omitempty"` // Auto, Manual
	// MaxPrefixes is petrel's (not Calico's): the most prefixes the peer
	// may send; 0 = the default (bgp.DefaultMaxPrefixes).
	MaxPrefixes uint32 `json:"maxPrefixes,omitempty"`
	// FailureDetectionMode and RestartMode are Calico Enterprise's:
	// BFDIfDirectlyConnected runs BFD when the peer is on a subnet of
	// this node; LongLivedGracefulRestart turns on RFC 9494 with
	// maxRestartTime as the long-lived stale time.
	FailureDetectionMode string `json:"failureDetectionMode,omitempty"` // None, BFDIfDirectlyConnected
	RestartMode          string `json:"restartMode,omitempty"`          // GracefulRestart, LongLivedGracefulRestart
}

// BGPPassword points at a Secret key, as Calico's does.
type BGPPassword struct {
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
}

type SecretKeySelector struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// BGPConfiguration is the global ("default") or per-node ("node.<name>")
// BGP settings.
type BGPConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BGPConfigurationSpec `json:"spec,omitempty"`
}

type BGPConfigurationSpec struct {
	LogSeverityScreen      string           `json:"logSeverityScreen,omitempty"`
	NodeToNodeMeshEnabled  *bool            `json:"nodeToNodeMeshEnabled,omitempty"`
	ASNumber               *uint32          `json:"asNumber,omitempty"`
	ServiceClusterIPs      []ServiceIPBlock `json:"serviceClusterIPs,omitempty"`
	ServiceExternalIPs     []ServiceIPBlock `json:"serviceExternalIPs,omitempty"`
	ServiceLoadBalancerIPs []ServiceIPBlock `json:"serviceLoadBalancerIPs,omitempty"`
	// ServiceLoadBalancerAggregation: Enabled (default) advertises the
	// serviceLoadBalancerIPs CIDRs; Disabled one /32 (/128) per assigned
	// LoadBalancer address instead.
	ServiceLoadBalancerAggregation string           `json:"serviceLoadBalancerAggregation,omitempty"`
	ListenPort                     uint16           `json:"listenPort,omitempty"`
	NodeMeshPassword               *BGPPassword     `json:"nodeMeshPassword,omitempty"`
	NodeMeshMaxRestartTime         *metav1.Duration `json:"nodeMeshMaxRestartTime,omitempty"`
	// NodeMeshMaxPrefixes is petrel's: BGPPeer's maxPrefixes for the
	// node-to-node mesh sessions.
	NodeMeshMaxPrefixes  *uint32        `json:"nodeMeshMaxPrefixes,omitempty"`
	BindMode             string         `json:"bindMode,omitempty"`
	IgnoredInterfaces    []string       `json:"ignoredInterfaces,omitempty"`
	Communities          []Community    `json:"communities,omitempty"`
	PrefixAdvertisements []PrefixAdvert `json:"prefixAdvertisements,omitempty"`
	ProgramClusterRoutes string         `json:"programClusterRoutes,omitempty"`
	// NodeMeshFailureDetectionMode and NodeMeshRestartMode are petrel's:
	// BGPPeer's failureDetectionMode and restartMode for the node-to-node
	// mesh (nodeMeshMaxRestartTime is then the long-lived stale time).
	NodeMeshFailureDetectionMode string `json:"nodeMeshFailureDetectionMode,omitempty"`
	NodeMeshRestartMode          string `json:"nodeMeshRestartMode,omitempty"`
}

// BFDConfiguration is Calico Enterprise's BFD timers for the nodes its
// selector picks, per interface. A node uses the first (by name) that
// selects it.
type BFDConfiguration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BFDConfigurationSpec `json:"spec,omitempty"`
}

type BFDConfigurationSpec struct {
	NodeSelector string         `json:"nodeSelector,omitempty"` // empty = all()
	Interfaces   []BFDInterface `json:"interfaces,omitempty"`
}

// BFDInterface holds the timers for the interfaces matchPattern names
// ("eth0", "eth*", "*"); the first match wins.
type BFDInterface struct {
	MatchPattern        string           `json:"matchPattern"`
	MinimumRecvInterval *metav1.Duration `json:"minimumRecvInterval,omitempty"`
	MinimumSendInterval *metav1.Duration `json:"minimumSendInterval,omitempty"`
	// IdleSendInterval is accepted for compatibility; GoBGP's BFD has no
	// slower idle rate, so it is not used.
	IdleSendInterval *metav1.Duration `json:"idleSendInterval,omitempty"`
	Multiplier       int              `json:"multiplier,omitempty"`
}

type ServiceIPBlock struct {
	CIDR string `json:"cidr"`
}

type Community struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type PrefixAdvert struct {
	CIDR        string   `json:"cidr"`
	Communities []string `json:"communities,omitempty"`
}

func (*Node) Kind() Kind             { return KindNode }
func (*IPPool) Kind() Kind           { return KindIPPool }
func (*IPAMBlock) Kind() Kind        { return KindIPAMBlock }
func (*IPAMHandle) Kind() Kind       { return KindIPAMHandle }
func (*BlockAffinity) Kind() Kind    { return KindBlockAffinity }
func (*IPAMConfig) Kind() Kind       { return KindIPAMConfig }
func (*BGPPeer) Kind() Kind          { return KindBGPPeer }
func (*BGPConfiguration) Kind() Kind { return KindBGPConfiguration }
func (*BFDConfiguration) Kind() Kind { return KindBFDConfiguration }

// IPv4 returns the node's BGP IPv4 address and subnet, if it has one.
func (n *Node) IPv4() (netip.Prefix, bool) {
	if n.Spec.BGP == nil || n.Spec.BGP.IPv4Address == "" {
		return netip.Prefix{}, false
	}
	p, err := parseAddrOrCIDR(n.Spec.BGP.IPv4Address)
	return p, err == nil && p.Addr().Is4()
}

// IPv6 returns the node's BGP IPv6 address and subnet, if it has one.
func (n *Node) IPv6() (netip.Prefix, bool) {
	if n.Spec.BGP == nil || n.Spec.BGP.IPv6Address == "" {
		return netip.Prefix{}, false
	}
	p, err := parseAddrOrCIDR(n.Spec.BGP.IPv6Address)
	return p, err == nil && p.Addr().Is6()
}

// parseAddrOrCIDR accepts "10.0.0.5/24" and a bare "10.0.0.5" (/32).
func parseAddrOrCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
