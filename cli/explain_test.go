package cli

import (
	"bytes"
	"strings"
	"testing"

	petrelpb "github.com/petrel-net/petrel/proto"
)

func TestWriteExplain(t *testing.T) {
	var b bytes.Buffer
	WriteExplain(&b, &petrelpb.ExplainResponse{
		Target: "192.168.1.7", Prefix: "192.168.1.0/26", Verdict: petrelpb.ExplainResponse_NOT_INSTALLED,
		Origin:  &petrelpb.Origin{Block: "192.168.1.0/26", Affinity: "node1", AffinityState: "confirmed", Sources: []string{"originate"}},
		Paths:   []*petrelpb.Path{{Local: true, Best: true}},
		Exports: []*petrelpb.PeerExport{{Peer: "10.0.0.200", Name: "tor", Type: "global, eBGP", State: "Established", Rule: `BGPFilter "edge": spec.exportV4[0] (Reject)`}},
		Fib:     &petrelpb.FIBState{Installed: true, Owner: "kernel sync (block blackhole)", NextHops: []*petrelpb.NextHop{{Blackhole: true}}},
		Summary: []string{"not sent to 10.0.0.200 (tor): ..."},
	})
	for _, want := range []string{
		"192.168.1.0/26 (longest match for 192.168.1.7): NOT installed",
		"IPAM block 192.168.1.0/26, affine to node1 (confirmed)",
		"local path injected by originate",
		"10.0.0.200  tor   global, eBGP  Established  no        BGPFilter \"edge\": spec.exportV4[0] (Reject)",
		"installed by kernel sync (block blackhole), blackhole",
		"  - not sent to 10.0.0.200",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	WriteExplain(&b, &petrelpb.ExplainResponse{Target: "10.99.0.1", Summary: []string{"unknown: nothing covers it"}})
	if got := b.String(); !strings.HasPrefix(got, "10.99.0.1: unknown\n") || strings.Contains(got, "origin:") {
		t.Errorf("unknown:\n%s", got)
	}
}

func TestWriteFIB(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFIB(&b, []*petrelpb.FIBRoute{
		{Prefix: "192.168.2.0/26", Installed: true, Stale: true, Owner: "kernel sync", Peers: []string{"10.0.0.2"},
			NextHops: []*petrelpb.NextHop{{Gateway: "10.0.0.2", Interface: "eth1"}}},
		{Prefix: "192.168.3.0/26", Wanted: true, Owner: "foreign (protocol static)", Reason: "a foreign route holds it"},
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"192.168.2.0/26  yes (stale)  kernel sync", "via 10.0.0.2 dev eth1", "192.168.3.0/26  no", "local     a foreign route holds it"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("lacks %q:\n%s", want, b.String())
		}
	}
}
