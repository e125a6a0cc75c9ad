package config

import (
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/petrel-net/petrel/nodeaddr"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// The kernel defaults of datastore mode are a config file's.
func TestDefaultKernelIsAMinimalFilesKernel(t *testing.T) {
	cfg, err := Parse([]byte("routerID: 10.0.0.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Kernel, DefaultKernel()) {
		t.Errorf("file's kernel %+v\nDefaultKernel    %+v", cfg.Kernel, DefaultKernel())
	}
}

func TestNodeFromEnv(t *testing.T) {
	n, err := NodeFromEnv(env(map[string]string{
		EnvNodeName: "node-a", EnvIP: "10.0.0.5/24", EnvIP6: "autodetect", EnvIP6Method: "cidr=fd00::/8", EnvLogLevel: "Warning",
		EnvKernelProtocol: "44", EnvKernelTable: "100", EnvKernelInterfaces: "-veth*, eth*",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Node{Name: "node-a", LogLevel: slog.LevelWarn, Kernel: DefaultKernel(),
		IPv4: nodeaddr.Setting{Family: 4, Raw: "10.0.0.5/24", Mode: nodeaddr.Explicit, Address: netip.MustParseAddr("10.0.0.5"), Bits: 24, Method: nodeaddr.Method{Kind: "first-found"}},
		IPv6: nodeaddr.Setting{Family: 6, Raw: "autodetect", Mode: nodeaddr.Autodetect, Bits: -1,
			Method: nodeaddr.Method{Raw: "cidr=fd00::/8", Kind: "cidr", CIDRs: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}}},
	}
	want.Kernel.Protocol, want.Kernel.Table, want.Kernel.Interfaces = 44, 100, []string{"-veth*", "eth*"}
	if !reflect.DeepEqual(n, want) {
		t.Errorf("got  %+v\nwant %+v", n, want)
	}
}

func TestNodeFromEnvDefaults(t *testing.T) {
	n, err := NodeFromEnv(env(map[string]string{EnvNodeName: "node-a"}))
	if err != nil {
		t.Fatal(err)
	}
	unset := func(family int) nodeaddr.Setting {
		return nodeaddr.Setting{Family: family, Mode: nodeaddr.Unset, Bits: -1, Method: nodeaddr.Method{Kind: "first-found"}}
	}
	if want := (Node{Name: "node-a", LogLevel: slog.LevelInfo, Kernel: DefaultKernel(), IPv4: unset(4), IPv6: unset(6)}); !reflect.DeepEqual(n, want) {
		t.Errorf("got  %+v\nwant %+v", n, want)
	}
}

func TestNodeFromEnvRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{EnvIP, "fd00::1", `IP="fd00::1": not an IPv4 address`},
		{EnvIP6, "10.0.0.1/24", `IP6="10.0.0.1/24": not an IPv6 address`},
		{EnvIPMethod, "nearest", `IP_AUTODETECTION_METHOD="nearest": not one of first-found`},
		{EnvIP6Method, "interface=eth(", `IP6_AUTODETECTION_METHOD="interface=eth(": "eth(" is not a regular expression`},
		{EnvLogLevel, "loud", "BGP_LOGSEVERITYSCREEN: \"loud\""},
		{EnvKernelProtocol, "3", "PETREL_KERNEL_PROTOCOL: 3 must be 5-255"},
		{EnvKernelProtocol, "bird", "PETREL_KERNEL_PROTOCOL: \"bird\" is not a number"},
		{EnvKernelTable, "0", "PETREL_KERNEL_TABLE: \"0\" is not a route table number"},
		{EnvKernelInterfaces, "eth*,-", "PETREL_KERNEL_INTERFACES[1]: \"-\" is not an interface pattern"},
	} {
		_, err := NodeFromEnv(env(map[string]string{tc.name: tc.value}))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: error %v, want %q", tc.name, tc.value, err, tc.want)
		}
	}
}
