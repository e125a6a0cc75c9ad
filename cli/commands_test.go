package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/memory"
	petrelpb "github.com/petrel-net/petrel/proto"
)

func TestHealthLineNamesOnlyTheAskedChecks(t *testing.T) {
	h := &petrelpb.GetHealthResponse{BgpReady: true, BgpReason: "2 of 2 peers Established", KernelReady: false, KernelReason: "first reconcile running"}
	line, ok := healthLine(h, HealthChecks{BGPReady: true, KernelReady: true})
	if ok || line != "bgp ready (2 of 2 peers Established); kernel not ready (first reconcile running)" {
		t.Errorf("line %q ok %v", line, ok)
	}
	if _, ok := healthLine(h, HealthChecks{BGPReady: true}); !ok {
		t.Error("only BGP asked, and it is ready: not ok")
	}
}

// Arguments are checked before the datastore is opened.
func TestCommandsCheckArgumentsFirst(t *testing.T) {
	never := Opener(func(func(datastore.Backend) error) error { return errors.New("datastore opened") })
	ctx := context.Background()
	for name, err := range map[string]error{
		"get":      Get(ctx, "pools-and-more", "", "table", never, nil),
		"allocate": IPAMAllocate(ctx, AllocateRequest{}, never, nil),
		// --ipv4=false without --ipv6: no family left
		"allocate no family": IPAMAllocate(ctx, AllocateRequest{Handle: "h"}, never, nil),
		"add no family":      WorkloadAdd(ctx, WorkloadRequest{Name: "default/pod1", NetNS: "pod1"}, never, nil),
		"release":            IPAMRelease(ctx, ReleaseRequest{Handle: "h", IP: "10.0.0.1"}, never, nil),
		"add":                WorkloadAdd(ctx, WorkloadRequest{Name: "default/pod1"}, never, nil),
		"del":                WorkloadDel(ctx, WorkloadRequest{Name: "pod1"}, never, nil),
		"apply":              ApplyFile(ctx, "", nil, never, nil),
	} {
		if err == nil || strings.Contains(err.Error(), "datastore opened") {
			t.Errorf("%s: %v, want an argument error before opening the datastore", name, err)
		}
	}
}

// TestIPAMAllocateFamilies: one address of each requested family, IPv4
// first; --pool takes its own family.
func TestIPAMAllocateFamilies(t *testing.T) {
	b := memory.New()
	open := Opener(func(fn func(datastore.Backend) error) error { return fn(b) })
	ctx := context.Background()
	var out bytes.Buffer
	in := strings.NewReader("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: v4}\nspec: {cidr: 10.0.0.0/24}\n---\n" +
		"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: v6}\nspec: {cidr: 'fd00:10::/64'}\n")
	if err := ApplyFile(ctx, "-", in, open, &out); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		req  AllocateRequest
		want []string // prefixes of the printed addresses
	}{
		{AllocateRequest{IPv4: true, IPv6: true}, []string{"10.0.0.", "fd00:10::"}},
		{AllocateRequest{IPv6: true}, []string{"fd00:10::"}},
		{AllocateRequest{IPv4: true}, []string{"10.0.0."}},
		{AllocateRequest{IPv4: true, Pool: "fd00:10::/64"}, []string{"fd00:10::"}},
	} {
		out.Reset()
		tc.req.Node, tc.req.Handle = "n1", "h"
		if err := IPAMAllocate(ctx, tc.req, open, &out); err != nil {
			t.Fatalf("%+v: %v", tc.req, err)
		}
		got := strings.Fields(out.String())
		if len(got) != len(tc.want) {
			t.Fatalf("%+v printed %q, want %v", tc.req, got, tc.want)
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tc.want[i]) {
				t.Errorf("%+v printed %q, want %v", tc.req, got, tc.want)
			}
		}
	}
}

func TestApplyGetDelete(t *testing.T) {
	b := memory.New()
	open := Opener(func(fn func(datastore.Backend) error) error { return fn(b) })
	ctx := context.Background()
	var out bytes.Buffer
	in := strings.NewReader("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 192.168.0.0/16}\n")
	if err := ApplyFile(ctx, "-", in, open, &out); err != nil {
		t.Fatal(err)
	}
	if err := Get(ctx, "ippools", "", "table", open, &out); err != nil {
		t.Fatal(err)
	}
	if err := Delete(ctx, "ippool", "pool1", open, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`IPPool "pool1" created`, "192.168.0.0/16", `IPPool "pool1" deleted`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
