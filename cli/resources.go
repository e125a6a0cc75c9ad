package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	"github.com/petrel-net/petrel/datastore"
)

// Apply creates each object or, when it exists, updates it in place
// (compare-and-swap against the version just read, retried on conflict).
// It stops at the first failure; out gets one line per object, like
// calicoctl's.
func Apply(ctx context.Context, b datastore.Backend, objs []datastore.Object, out io.Writer) error {
	for _, o := range objs {
		verb, err := applyOne(ctx, b, o)
		if err != nil {
			return fmt.Errorf("%s %q: %w", o.Kind(), o.GetName(), err)
		}
		fmt.Fprintf(out, "%s %q %s\n", o.Kind(), o.GetName(), verb)
	}
	return nil
}

func applyOne(ctx context.Context, b datastore.Backend, o datastore.Object) (string, error) {
	for attempt := 0; attempt < 5; attempt++ {
		cur, err := b.Get(ctx, o.Kind(), o.GetName())
		if errors.Is(err, datastore.ErrNotFound) {
			if _, err = b.Create(ctx, o); err == nil {
				return "created", nil
			}
			if errors.Is(err, datastore.ErrExists) {
				continue
			}
			return "", err
		}
		if err != nil {
			return "", err
		}
		o.SetResourceVersion(cur.GetResourceVersion())
		if _, err = b.Update(ctx, o); err == nil {
			return "configured", nil
		}
		if !errors.Is(err, datastore.ErrConflict) {
			return "", err
		}
	}
	return "", errors.New("gave up after 5 conflicting updates")
}

// WriteObjects prints objects as yaml, json, or a table (table/wide).
func WriteObjects(w io.Writer, objs []datastore.Object, format string) error {
	slices.SortFunc(objs, func(a, b datastore.Object) int { return strings.Compare(a.GetName(), b.GetName()) })
	switch format {
	case "yaml", "json":
		var doc any = objs
		if len(objs) == 1 {
			doc = objs[0]
		} else {
			doc = map[string]any{"apiVersion": "v1", "kind": "List", "items": objs}
		}
		if format == "json" {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(doc)
		}
		out, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		_, err = w.Write(out)
		return err
	case "", "table", "wide":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\t"+strings.Join(summaryHeader(objs, format == "wide"), "\t"))
		for _, o := range objs {
			fmt.Fprintln(tw, o.GetName()+"\t"+strings.Join(summary(o, format == "wide"), "\t"))
		}
		return tw.Flush()
	}
	return fmt.Errorf("output %q: must be yaml, json, table or wide", format)
}

func summaryHeader(objs []datastore.Object, wide bool) []string {
	if len(objs) == 0 {
		return nil
	}
	switch objs[0].(type) {
	case *datastore.Node:
		return []string{"IPV4", "ASN", "RR CLUSTER"}
	case *datastore.IPPool:
		h := []string{"CIDR", "BLOCK SIZE", "VXLAN", "IPIP"}
		if wide {
			h = append(h, "NAT", "DISABLED", "SELECTOR")
		}
		return h
	case *datastore.BGPPeer:
		h := []string{"PEER", "ASN", "NODE"}
		if wide {
			h = append(h, "NODE SELECTOR", "PEER SELECTOR", "PASSWORD")
		}
		return h
	case *datastore.IPAMBlock:
		return []string{"CIDR", "AFFINITY", "FREE"}
	}
	return []string{"KIND"}
}

func summary(o datastore.Object, wide bool) []string {
	switch v := o.(type) {
	case *datastore.Node:
		ip, asn, rr := "", "", ""
		if b := v.Spec.BGP; b != nil {
			ip, rr = b.IPv4Address, b.RouteReflectorClusterID
			if b.ASNumber != nil {
				asn = fmt.Sprint(*b.ASNumber)
			}
		}
		return []string{orDash(ip), orDash(asn), orDash(rr)}
	case *datastore.IPPool:
		s := []string{v.Spec.CIDR, fmt.Sprint(v.Spec.BlockSize), orDash(v.Spec.VXLANMode), orDash(v.Spec.IPIPMode)}
		if wide {
			s = append(s, fmt.Sprint(v.Spec.NATOutgoing), fmt.Sprint(v.Spec.Disabled), orDash(v.Spec.NodeSelector))
		}
		return s
	case *datastore.BGPPeer:
		node := v.Spec.Node
		if node == "" && v.Spec.NodeSelector == "" {
			node = "(global)"
		}
		s := []string{orDash(v.Spec.PeerIP), fmt.Sprint(v.Spec.ASNumber), orDash(node)}
		if wide {
			// Where the password comes from; the datastore never holds it.
			pw := "-"
			if r := v.Spec.Password; r != nil && r.SecretKeyRef != nil {
				pw = "Secret " + r.SecretKeyRef.Name + "/" + r.SecretKeyRef.Key
			}
			s = append(s, orDash(v.Spec.NodeSelector), orDash(v.Spec.PeerSelector), pw)
		}
		return s
	case *datastore.IPAMBlock:
		aff := ""
		if v.Spec.Affinity != nil {
			aff = *v.Spec.Affinity
		}
		return []string{v.Spec.CIDR, orDash(aff), fmt.Sprint(len(v.Spec.Unallocated))}
	}
	return []string{string(o.Kind())}
}
