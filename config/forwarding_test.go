package config

import (
	"strings"
	"testing"
)

func TestParseForwarding(t *testing.T) {
	tests := []struct {
		ipv4, ipv6 string
		want       Forwarding
		wantErr    string
	}{
		{ipv4: DefaultIPForwarding, ipv6: DefaultIPv6Forwarding, want: Forwarding{IPv4: true, IPv6Auto: true}},
		{ipv4: "Enabled", ipv6: " auto", want: Forwarding{IPv4: true, IPv6Auto: true}},
		{ipv4: "disabled", ipv6: "ENABLED", want: Forwarding{IPv6: true}},
		{ipv4: "Disabled", ipv6: "Disabled", want: Forwarding{}},
		{ipv4: "yes", ipv6: "Disabled", wantErr: `ip-forwarding: "yes" is neither Enabled nor Disabled`},
		{ipv4: "Enabled", ipv6: "", wantErr: `ipv6-forwarding: "" is neither Enabled nor Disabled (or Auto)`},
	}
	for _, tt := range tests {
		got, err := ParseForwarding(tt.ipv4, tt.ipv6)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseForwarding(%q, %q) err = %v, want %q", tt.ipv4, tt.ipv6, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseForwarding(%q, %q) = %+v, %v; want %+v", tt.ipv4, tt.ipv6, got, err, tt.want)
		}
	}
}
