package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	petrelpb "github.com/petrel-net/petrel/proto"
)

func TestWriteStatusLooksLikeCalicoctl(t *testing.T) {
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.Local)
	peers := []*petrelpb.Peer{
		{Address: "10.0.0.2", Type: "node-to-node mesh", State: "Established", Info: "Established", Since: timestamppb.New(now.Add(-time.Hour))},
		{Address: "10.0.0.3", Type: "global", State: "Active", Info: "Active  Socket: connection refused", Since: timestamppb.New(now.Add(-48 * time.Hour))},
	}
	var b bytes.Buffer
	WriteStatus(&b, peers, now)
	want := `petrel process is running.

IPv4 BGP status
+--------------+-------------------+-------+------------+------------------------------------+
| PEER ADDRESS |     PEER TYPE     | STATE |   SINCE    |                INFO                |
+--------------+-------------------+-------+------------+------------------------------------+
| 10.0.0.2     | node-to-node mesh | up    | 12:00:00   | Established                        |
| 10.0.0.3     | global            | start | 2026-11-23 | Active  Socket: connection refused |
+--------------+-------------------+-------+------------+------------------------------------+

IPv6 BGP status
No IPv6 peers found.
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteStatusShowsBFDWhenAPeerHasIt(t *testing.T) {
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.Local)
	peers := []*petrelpb.Peer{
		{Address: "10.0.0.2", Type: "global", State: "Established", Info: "Established", Since: timestamppb.New(now), BfdState: "Up", BfdMinRxMs: 200, BfdMinTxMs: 200, BfdMultiplier: 3, LlgrStaleTimeS: 60},
		{Address: "10.0.0.3", Type: "global", State: "Established", Info: "Established", Since: timestamppb.New(now)},
	}
	var b bytes.Buffer
	WriteStatus(&b, peers, now)
	for _, want := range []string{"|    BFD     |", "| Established | Up 3x200ms |", "| Established | -          |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := WriteStatusJSON(&b, peers[:1]); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); !strings.Contains(s, `"state": "Up"`) || !strings.Contains(s, `"minRxMs": 200`) || !strings.Contains(s, `"llgrStaleTime": "1m0s"`) {
		t.Errorf("JSON lacks BFD/LLGR: %s", s)
	}
}

func TestWriteStatusJSON(t *testing.T) {
	var b bytes.Buffer
	if err := WriteStatusJSON(&b, []*petrelpb.Peer{{Address: "fd00::2", State: "Connect", PrefixesReceived: 3}}); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(b.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0]["peerAddress"] != "fd00::2" || rows[0]["state"] != "start" || rows[0]["bgpState"] != "Connect" || rows[0]["prefixesReceived"] != 3.0 {
		t.Errorf("rows = %v", rows)
	}
}

func TestWriteRoutesShowsMultipathUnderBest(t *testing.T) {
	var b bytes.Buffer
	err := WriteRoutes(&b, []*petrelpb.Route{
		{Prefix: "192.168.1.0/26", Paths: []*petrelpb.Path{
			{NextHop: "10.0.0.2", Peer: "10.0.0.2", Best: true, AsPath: []uint32{65001}},
			{NextHop: "10.0.0.3", Peer: "10.0.0.3", AsPath: []uint32{65001}, Stale: true},
		}},
		{Prefix: "192.168.2.0/26", Paths: []*petrelpb.Path{{NextHop: "10.0.0.4", Peer: "10.0.0.4", Best: true, Stale: true, LlgrStale: true}}},
		{Prefix: "192.168.0.192/26", Paths: []*petrelpb.Path{{Local: true, Best: true}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines:\n%s", len(lines), b.String())
	}
	for i, want := range [][]string{
		{"PREFIX", "NEXT HOP", "FROM"},
		{"192.168.1.0/26", "10.0.0.2", "65001", "best"},
		{"10.0.0.3", "multipath (stale)"},
		{"192.168.2.0/26", "best (llgr-stale, depreferred)"},
		{"192.168.0.192/26", "-", "local", "best"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.HasPrefix(lines[2], "192.168.1.0/26") {
		t.Error("multipath line repeats the prefix")
	}
}

func TestWriteKernel(t *testing.T) {
	var b bytes.Buffer
	WriteKernel(&b, &petrelpb.KernelStatus{FibRoutes: 10, Protocol: 12, Table: 254, Writes: 12, Repairs: 1, GracefulRestart: true})
	if want := "Kernel: 10 routes (protocol 12, table 254), 12 writes, 1 repairs, 0 write errors, graceful restart in progress"; !strings.Contains(b.String(), want) {
		t.Errorf("got %q", b.String())
	}
	b.Reset()
	WriteKernel(&b, nil)
	if !strings.Contains(b.String(), "disabled") {
		t.Errorf("got %q", b.String())
	}
}
