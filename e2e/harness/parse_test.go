package harness

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/petrel-net/petrel/internal/birdshow"
)

// The parsers are tested against output captured from the Debian packages
// this harness drives (BIRD 2.0.12, FRR 8.4.4, gobgp 3.10), so they need
// neither root nor the daemons.

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseBirdRoutes(t *testing.T) {
	for _, tc := range []struct {
		file string
		want map[string][]string
	}{{
		// Two routes for 10.99.5.0/24 (the second line without prefix),
		// a multipath static route, device, blackhole and unreachable routes.
		file: "bird-show-route.txt",
		want: map[string][]string{
			"10.99.7.0/24": {},
			"10.99.2.0/24": {"10.0.0.2"},
			"10.99.3.0/24": {"10.0.1.2"},
			"10.99.5.0/24": {"10.0.0.2", "10.0.1.2"},
			"10.99.6.0/24": {"10.0.0.2", "10.0.1.2"},
			"10.0.0.0/24":  {},
			"10.0.1.0/24":  {},
			"10.99.1.0/24": {},
		},
	}, {
		// master4 and master6, separated by an empty line.
		file: "bird-show-route-multitable.txt",
		want: map[string][]string{
			"10.99.7.0/24":     {},
			"10.99.2.0/24":     {"10.0.0.2"},
			"10.99.5.0/24":     {"10.0.0.2"},
			"10.99.6.0/24":     {"10.0.0.2", "10.0.1.2"},
			"10.0.0.0/24":      {},
			"10.0.1.0/24":      {},
			"10.99.1.0/24":     {},
			"2001:db8:99::/64": {},
			"2001:db8:98::/64": {"fe80::1"},
		},
	}} {
		t.Run(tc.file, func(t *testing.T) {
			got := birdshow.Routes(readTestdata(t, tc.file))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestParseBirdProtocols(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []BirdProtocol
	}{{
		file: "bird-show-protocols.txt",
		want: []BirdProtocol{
			{Name: "device1", Proto: "Device", Table: "---", State: "up", Since: "12:53:49.835"},
			{Name: "direct1", Proto: "Direct", Table: "---", State: "up", Since: "12:53:49.835"},
			{Name: "kernel1", Proto: "Kernel", Table: "master4", State: "up", Since: "12:53:49.835"},
			{Name: "st", Proto: "Static", Table: "master4", State: "up", Since: "12:53:49.835"},
			{Name: "frr", Proto: "BGP", Table: "---", State: "up", Since: "12:54:01.826", Info: "Established"},
			{Name: "gobgp", Proto: "BGP", Table: "---", State: "start", Since: "12:53:49.835", Info: "Active Socket: No route to host"},
		},
	}, {
		// "timeformat protocol iso long" and a name wider than its column.
		file: "bird-show-protocols-isolong.txt",
		want: []BirdProtocol{
			{Name: "device1", Proto: "Device", Table: "---", State: "up", Since: "2026-11-25 12:53:49"},
			{Name: "direct1", Proto: "Direct", Table: "---", State: "up", Since: "2026-11-25 12:55:30"},
			{Name: "st6", Proto: "Static", Table: "master6", State: "up", Since: "2026-11-25 12:55:37"},
			{Name: "kernel1", Proto: "Kernel", Table: "master4", State: "up", Since: "2026-11-25 12:53:49"},
			{Name: "st", Proto: "Static", Table: "master4", State: "up", Since: "2026-11-25 12:53:49"},
			{Name: "frr", Proto: "BGP", Table: "---", State: "up", Since: "2026-11-25 12:54:01", Info: "Established"},
			{Name: "gobgp_with_long_name", Proto: "BGP", Table: "---", State: "start", Since: "2026-11-25 12:55:37", Info: "Active"},
		},
	}} {
		t.Run(tc.file, func(t *testing.T) {
			got := parseBirdProtocols(readTestdata(t, tc.file))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseFRRRoutes(t *testing.T) {
	got := map[string][]string{}
	if err := parseFRRRoutes(readTestdata(t, "frr-bgp-ipv4.json"), got); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"10.0.0.0/24":  {"10.0.0.1"},
		"10.0.1.0/24":  {"10.0.0.1"},
		"10.99.1.0/24": {"10.0.0.1"},
		"10.99.2.0/24": {}, // local network, next hop 0.0.0.0
		"10.99.5.0/24": {},
		"10.99.8.0/24": {}, // network without a route in the RIB: invalid
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestParseFRRNeighbor(t *testing.T) {
	var up frrNeighbor
	if err := parseFRRNeighbor(readTestdata(t, "frr-neighbor.json"), "10.0.0.1", &up); err != nil {
		t.Fatal(err)
	}
	if up.BGPState != "Established" || up.UpMsec == nil || *up.UpMsec != 5000 {
		t.Errorf("established neighbor: got %+v", up)
	}

	var idle frrNeighbor
	if err := parseFRRNeighbor(readTestdata(t, "frr-neighbor-idle.json"), "10.0.0.9", &idle); err != nil {
		t.Fatal(err)
	}
	if idle.BGPState != "Active" || idle.UpMsec != nil {
		t.Errorf("down neighbor: got %+v", idle)
	}

	var raw map[string]any
	if err := parseFRRNeighbor(readTestdata(t, "frr-neighbor-none.json"), "10.0.0.7", &raw); err == nil {
		t.Errorf("unknown neighbor: no error, got %v", raw)
	}
}

func TestParseGoBGPRoutes(t *testing.T) {
	got := map[string][]string{}
	for _, f := range []string{"gobgp-rib-ipv4.json", "gobgp-rib-ipv6.json"} {
		if err := parseGoBGPRoutes(readTestdata(t, f), got); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{
		"10.0.0.0/24":     {"10.0.1.1"},
		"10.0.1.0/24":     {"10.0.1.1"},
		"10.99.1.0/24":    {"10.0.1.1"},
		"10.99.3.0/24":    {}, // local, next hop 0.0.0.0
		"10.99.5.0/24":    {},
		"2001:db8:3::/64": {"2001:db8::3"}, // next hop in MP_REACH_NLRI
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}

func TestGoBGPNeighborState(t *testing.T) {
	for _, tc := range []struct {
		json string
		want string
	}{
		{readTestdata(t, "gobgp-neighbor.json"), "Established"},
		{readTestdata(t, "gobgp-neighbor-down.json"), "Idle"},
		{`{"state": {}}`, "Unknown"},
		{`{"state": {"session_state": "SESSION_STATE_OPENCONFIRM"}}`, "OpenConfirm"},
		{`{"state": {"session_state": "established"}}`, "Established"},
	} {
		var nb gobgpNeighbor
		if err := json.Unmarshal([]byte(tc.json), &nb); err != nil {
			t.Fatal(err)
		}
		if got, err := nb.state(); err != nil || got != tc.want {
			t.Errorf("state of %.60q = %q, %v; want %q", tc.json, got, err, tc.want)
		}
	}
	var bad gobgpNeighbor
	_ = json.Unmarshal([]byte(`{"state": {"session_state": 42}}`), &bad)
	if _, err := bad.state(); err == nil {
		t.Error("state 42: no error")
	}
}

func TestIsStale(t *testing.T) {
	for name, want := range map[string]bool{
		"pe2e-1-1-a":          false, // init: alive
		"pe2e-999999999-1-a":  true,  // beyond pid_max: cannot be alive
		"pe2e-abc-1-a":        false,
		"pe2e-":               false,
		"other-999999999-1-a": false,
	} {
		if got := isStale(name); got != want {
			t.Errorf("isStale(%q) = %v, want %v", name, got, want)
		}
	}
	if isStale(namePrefix + strconv.Itoa(os.Getpid()) + "-1-a") {
		t.Error("own namespace considered stale")
	}
}
