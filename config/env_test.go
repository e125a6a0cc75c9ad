package config

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
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
		EnvNodeName: "node-a", EnvIP: "10.0.0.5/24", EnvLogLevel: "Warning",
		EnvKernelProtocol: "44", EnvKernelTable: "100", EnvKernelInterfaces: "-veth*, eth*",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Node{Name: "node-a", IP: "10.0.0.5/24", LogLevel: slog.LevelWarn, Kernel: DefaultKernel()}
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
	if want := (Node{Name: "node-a", LogLevel: slog.LevelInfo, Kernel: DefaultKernel()}); !reflect.DeepEqual(n, want) {
		t.Errorf("got  %+v\nwant %+v", n, want)
	}
}

func TestNodeFromEnvRefusesBadValues(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
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
