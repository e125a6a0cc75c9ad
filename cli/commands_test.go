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
		"release":  IPAMRelease(ctx, ReleaseRequest{Handle: "h", IP: "10.0.0.1"}, never, nil),
		"add":      WorkloadAdd(ctx, WorkloadRequest{Name: "default/pod1"}, never, nil),
		"del":      WorkloadDel(ctx, WorkloadRequest{Name: "pod1"}, never, nil),
		"apply":    ApplyFile(ctx, "", nil, never, nil),
	} {
		if err == nil || strings.Contains(err.Error(), "datastore opened") {
			t.Errorf("%s: %v, want an argument error before opening the datastore", name, err)
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
