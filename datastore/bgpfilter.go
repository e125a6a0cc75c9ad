package datastore

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPFilter is Calico's ordered import and export rules for the BGPPeers
// that name it in spec.filters.
type BGPFilter struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BGPFilterSpec `json:"spec,omitempty"`
}

type BGPFilterSpec struct {
	ExportV4 []BGPFilterRule `json:"exportV4,omitempty"`
	ImportV4 []BGPFilterRule `json:"importV4,omitempty"`
	ExportV6 []BGPFilterRule `json:"exportV6,omitempty"`
	ImportV6 []BGPFilterRule `json:"importV6,omitempty"`
}

// BGPFilterRule matches a route when every criterion it sets holds; the
// first matching rule's action decides.
type BGPFilterRule struct {
	CIDR          string                 `json:"cidr,omitempty"`
	PrefixLength  *BGPFilterPrefixLength `json:"prefixLength,omitempty"`
	Source        string                 `json:"source,omitempty"` // RemotePeers
	Interface     string                 `json:"interface,omitempty"`
	MatchOperator string                 `json:"matchOperator,omitempty"` // Equal, NotEqual, In, NotIn
	PeerType      string                 `json:"peerType,omitempty"`      // eBGP, iBGP
	Communities   *BGPFilterCommunities  `json:"communities,omitempty"`
	ASPathPrefix  []uint32               `json:"asPathPrefix,omitempty"`
	Priority      *int                   `json:"priority,omitempty"`
	Action        string                 `json:"action"` // Accept, Reject
	Operations    []BGPFilterOperation   `json:"operations,omitempty"`
}

type BGPFilterPrefixLength struct {
	Min *int32 `json:"min,omitempty"`
	Max *int32 `json:"max,omitempty"`
}

type BGPFilterCommunities struct {
	Values []string `json:"values"`
}

// BGPFilterOperation sets exactly one of its fields.
type BGPFilterOperation struct {
	AddCommunity  *BGPFilterCommunityValue `json:"addCommunity,omitempty"`
	PrependASPath *BGPFilterPrepend        `json:"prependASPath,omitempty"`
	SetPriority   *BGPFilterPriority       `json:"setPriority,omitempty"`
}

type BGPFilterCommunityValue struct {
	Value string `json:"value"`
}

type BGPFilterPrepend struct {
	Prefix []uint32 `json:"prefix"`
}

type BGPFilterPriority struct {
	Value int `json:"value"`
}

func (*BGPFilter) Kind() Kind { return KindBGPFilter }

// Validate checks every rule as Calico's API does.
func (f *BGPFilter) Validate() error {
	if err := validateName(f); err != nil {
		return err
	}
	for _, list := range []struct {
		field string
		rules []BGPFilterRule
		v6    bool
	}{{"spec.exportV4", f.Spec.ExportV4, false}, {"spec.importV4", f.Spec.ImportV4, false},
		{"spec.exportV6", f.Spec.ExportV6, true}, {"spec.importV6", f.Spec.ImportV6, true}} {
		for i, r := range list.rules {
			if err := r.validate(f, fmt.Sprintf("%s[%d]", list.field, i), list.v6); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r BGPFilterRule) validate(f *BGPFilter, at string, v6 bool) error {
	if r.Action != "Accept" && r.Action != "Reject" {
		return invalid(f, at+".action", r.Action, "must be Accept or Reject")
	}
	if (r.CIDR == "") != (r.MatchOperator == "") {
		return invalid(f, at+".matchOperator", r.MatchOperator, "and cidr must both be set or both be empty")
	}
	if r.PrefixLength != nil && r.CIDR == "" {
		return invalid(f, at+".prefixLength", "", "needs cidr")
	}
	if r.CIDR != "" {
		p, err := checkCIDR(f, at+".cidr", r.CIDR, false)
		if err != nil {
			return err
		}
		if p.Addr().Is6() != v6 {
			return invalid(f, at+".cidr", r.CIDR, "is not of the rule list's address family")
		}
		if err := r.validateLengths(f, at, p); err != nil {
			return err
		}
	}
	if r.Communities != nil {
		if len(r.Communities.Values) != 1 {
			return invalid(f, at+".communities.values", len(r.Communities.Values), "values given; exactly one is supported")
		}
		if err := ValidCommunity(r.Communities.Values[0]); err != nil {
			return invalid(f, at+".communities.values[0]", r.Communities.Values[0], err.Error())
		}
	}
	if len(r.Operations) > 0 && r.Action != "Accept" {
		return invalid(f, at+".operations", len(r.Operations), "operations may only be used with action Accept")
	}
	for j, op := range r.Operations {
		if err := op.validate(f, fmt.Sprintf("%s.operations[%d]", at, j)); err != nil {
			return err
		}
	}
	return firstError(
		oneOf(f, at+".matchOperator", r.MatchOperator, "Equal", "NotEqual", "In", "NotIn"),
		oneOf(f, at+".source", r.Source, "RemotePeers"),
		oneOf(f, at+".peerType", r.PeerType, "eBGP", "iBGP"),
	)
}

func (r BGPFilterRule) validateLengths(f *BGPFilter, at string, p netip.Prefix) error {
	if r.PrefixLength == nil {
		return nil
	}
	bits := int32(p.Addr().BitLen())
	for _, l := range []struct {
		field string
		v     *int32
	}{{"min", r.PrefixLength.Min}, {"max", r.PrefixLength.Max}} {
		if l.v != nil && (*l.v < 0 || *l.v > bits) {
			return invalid(f, at+".prefixLength."+l.field, *l.v, fmt.Sprintf("is outside 0-%d", bits))
		}
	}
	if mn, mx := r.PrefixLength.Min, r.PrefixLength.Max; mn != nil && mx != nil && *mn > *mx {
		return invalid(f, at+".prefixLength.min", *mn, "is greater than max")
	}
	return nil
}

func (op BGPFilterOperation) validate(f *BGPFilter, at string) error {
	set := 0
	for _, isSet := range []bool{op.AddCommunity != nil, op.PrependASPath != nil, op.SetPriority != nil} {
		if isSet {
			set++
		}
	}
	if set != 1 {
		return invalid(f, at, set, "operations set; exactly one of addCommunity, prependASPath, setPriority must be")
	}
	if op.AddCommunity != nil {
		if err := ValidCommunity(op.AddCommunity.Value); err != nil {
			return invalid(f, at+".addCommunity.value", op.AddCommunity.Value, err.Error())
		}
	}
	if op.PrependASPath != nil {
		if n := len(op.PrependASPath.Prefix); n < 1 || n > 10 {
			return invalid(f, at+".prependASPath.prefix", n, "AS numbers given; 1-10 are allowed")
		}
		for _, as := range op.PrependASPath.Prefix {
			if as == 0 {
				return invalid(f, at+".prependASPath.prefix", 0, "is not an AS number")
			}
		}
	}
	return nil
}

// ValidCommunity checks a standard ("aa:nn", 16-bit parts) or large
// ("aa:nn:mm", 32-bit parts) community.
func ValidCommunity(c string) error {
	parts := strings.Split(c, ":")
	bits := 16
	switch len(parts) {
	case 2:
	case 3:
		bits = 32
	default:
		return fmt.Errorf("is neither aa:nn nor aa:nn:mm")
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, bits); err != nil {
			return fmt.Errorf("has %q, not a %d-bit number", p, bits)
		}
	}
	return nil
}
