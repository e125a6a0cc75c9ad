package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/petrel-net/petrel/nodeaddr"
)

// Environment variables of datastore mode, which has no file: calico-node's
// names where it has one, PETREL_ ones for what BIRD hard-codes in calico-node.
// docs/datastore.md lists them all in one table.
const (
	EnvNodeName         = "NODENAME"
	EnvIP               = nodeaddr.EnvIP
	EnvIP6              = nodeaddr.EnvIP6
	EnvIPMethod         = nodeaddr.EnvIPMethod
	EnvIP6Method        = nodeaddr.EnvIP6Method
	EnvLogLevel         = "BGP_LOGSEVERITYSCREEN"
	EnvRouterID         = "CALICO_ROUTER_ID"
	EnvKernelProtocol   = "PETREL_KERNEL_PROTOCOL"
	EnvKernelTable      = "PETREL_KERNEL_TABLE"
	EnvKernelInterfaces = "PETREL_KERNEL_INTERFACES"
)

// Node is datastore mode's own settings (the datastore itself is
// backends.Settings).
type Node struct {
	// Name is the node's name: $NODENAME, else the hostname.
	Name string
	// IPv4 and IPv6 are $IP and $IP6 with their autodetection methods
	// ($IP_AUTODETECTION_METHOD, $IP6_AUTODETECTION_METHOD), checked;
	// nodeaddr resolves them to the node's addresses.
	IPv4, IPv6 nodeaddr.Setting
	LogLevel   slog.Level
	// RouterID is $CALICO_ROUTER_ID as given: "" (the node's IPv4
	// address), an address, or "hash" (see RouterID).
	RouterID string
	// Kernel is DefaultKernel with the protocol, table and interface
	// patterns from the environment.
	Kernel Kernel
}

// NodeFromEnv reads datastore mode's settings with getenv (os.Getenv),
// refusing a value it cannot use and naming its variable.
func NodeFromEnv(getenv func(string) string) (Node, error) {
	n := Node{Name: NodeName(getenv), RouterID: getenv(EnvRouterID), Kernel: DefaultKernel()}
	var err error
	if n.IPv4, err = nodeaddr.Parse(4, getenv(EnvIP), getenv(EnvIPMethod)); err != nil {
		return Node{}, err
	}
	if n.IPv6, err = nodeaddr.Parse(6, getenv(EnvIP6), getenv(EnvIP6Method)); err != nil {
		return Node{}, err
	}
	if _, err := RouterID(n.RouterID, n.Name, netip.IPv4Unspecified()); err != nil && n.RouterID != "" {
		return Node{}, err
	}
	if n.LogLevel, err = parseLevel(calicoLevel(getenv(EnvLogLevel))); err != nil {
		return Node{}, fmt.Errorf("%s: %q is not one of debug, info, warning, error", EnvLogLevel, getenv(EnvLogLevel))
	}
	if v := getenv(EnvKernelProtocol); v != "" {
		p, err := strconv.Atoi(v)
		if err != nil {
			return Node{}, fmt.Errorf("%s: %q is not a number", EnvKernelProtocol, v)
		}
		if err := checkProtocol(EnvKernelProtocol, p); err != nil {
			return Node{}, err
		}
		n.Kernel.Protocol = p
	}
	if v := getenv(EnvKernelTable); v != "" {
		t, err := strconv.ParseUint(v, 10, 32)
		if err != nil || t == 0 {
			return Node{}, fmt.Errorf("%s: %q is not a route table number (1-4294967295)", EnvKernelTable, v)
		}
		n.Kernel.Table = uint32(t)
	}
	if v := getenv(EnvKernelInterfaces); v != "" {
		n.Kernel.Interfaces = splitList(v)
		if err := checkInterfaces(EnvKernelInterfaces, n.Kernel.Interfaces); err != nil {
			return Node{}, err
		}
	}
	return n, nil
}

// NodeName is $NODENAME, else the hostname, as calico-node names its node.
func NodeName(getenv func(string) string) string {
	if name := getenv(EnvNodeName); name != "" {
		return name
	}
	name, _ := os.Hostname()
	return name
}

// calicoLevel maps Calico's severities (Warning, Fatal) onto slog's.
// CalicoLogLevel parses calico-node's log severities (Debug, Info,
// Warning, Error, Fatal; any case) as a slog level.
func CalicoLogLevel(s string) (slog.Level, error) {
	l, err := parseLevel(calicoLevel(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not one of Debug, Info, Warning, Error, Fatal", s)
	}
	return l, nil
}

func calicoLevel(s string) string {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "warning":
		return "warn"
	case "fatal", "panic":
		return "error"
	}
	return s
}

// splitList splits "a, b,c" into its non-empty, trimmed items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
