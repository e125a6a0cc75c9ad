package birdshow

import (
	"reflect"
	"testing"
)

// Alternative routes, a multipath route and a route without a gateway
// (the e2e harness's parse tests cover recorded birdc output too).
func TestRoutes(t *testing.T) {
	out := "BIRD 2.0.12 ready.\nTable master4:\n" +
		"10.96.0.0/24         unicast [node1 22:10:35.348] * (100) [i]\n\tvia 10.0.0.1 on eth1\n" +
		"                     unicast [node2 22:10:35.338] (100) [i]\n\tvia 10.0.0.2 on eth1\n" +
		"10.99.6.0/24         unicast [st 12:55:30.011] * (200)\n\tvia 10.0.0.2 on eth1 weight 1\n\tvia 10.0.1.2 on eth3 weight 1\n" +
		"10.0.0.0/24          unicast [direct1 22:10:33.441] * (240)\n\tdev eth1\n"
	want := map[string][]string{
		"10.96.0.0/24": {"10.0.0.1", "10.0.0.2"},
		"10.99.6.0/24": {"10.0.0.2", "10.0.1.2"},
		"10.0.0.0/24":  {},
	}
	if got := Routes(out); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
}
