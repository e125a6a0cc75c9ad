// Package config reads petrel's settings: the standalone configuration
// file (the datastore-free mode in which petrel runs the way a bird.cfg
// user runs BIRD, with peers and originated prefixes listed in one YAML
// file), and in datastore mode the node's settings from calico-node's
// environment (NodeFromEnv). DefaultKernel is what both start from.
//
// It only parses and validates; it never starts anything. Every error names
// the key (with its path, e.g. peers[1].address) and the offending value.
package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/petrel-net/petrel/bgp"
	"github.com/petrel-net/petrel/kernelsync"
)

// Defaults for the kernel section (calico-node's bird.cfg).
const (
	DefaultSocket         = "/var/run/petrel/petrel.sock"
	DefaultKernelProtocol = 12 // RTPROT_BIRD, as calico-node's routes
	DefaultKernelTable    = 254
	DefaultScanTime       = 2 * time.Second
	DefaultRestartWait    = 120 * time.Second
)

// DefaultInterfaces is kernel sync's protocol direct list.
var DefaultInterfaces = kernelsync.DefaultInterfaces

// File is the YAML document as written by the user. Field names are the
// keys; Parse turns it into a validated Config.
type File struct {
	NodeName  string     `json:"nodeName"`
	RouterID  string     `json:"routerID"`
	ASNumber  uint32     `json:"asNumber"`
	Listen    ListenFile `json:"listen"`
	Socket    string     `json:"socket"`
	LogLevel  string     `json:"logLevel"`
	Peers     []PeerFile `json:"peers"`
	Originate []string   `json:"originate"`
	Export    []string   `json:"export"`
	Kernel    KernelFile `json:"kernel"`
}

// ListenFile is the `listen` section.
type ListenFile struct {
	Address string `json:"address"`
	Port    int32  `json:"port"`
}

// PeerFile is one entry of `peers`.
type PeerFile struct {
	Name            string `json:"name"`
	Address         string `json:"address"`
	ASNumber        uint32 `json:"asNumber"`
	Port            uint16 `json:"port"`
	Password        string `json:"password"`
	Multihop        uint8  `json:"multihop"`
	SourceAddress   string `json:"sourceAddress"`
	Passive         bool   `json:"passive"`
	GracefulRestart *bool  `json:"gracefulRestart"`
	RestartTime     string `json:"restartTime"`
	AddPaths        *bool  `json:"addPaths"`
	KeepaliveTime   string `json:"keepaliveTime"`
	// HoldTime defaults to BIRD's 240s (keepalive a third of it).
	HoldTime string `json:"holdTime"`
	// TTLSecurity is GTSM: the most hops the peer's packets may cross.
	TTLSecurity uint8 `json:"ttlSecurity"`
	// AllowLocalAS accepts routes carrying our AS this many times.
	AllowLocalAS uint8 `json:"allowLocalAS"`
	// MaxPrefixes: the most prefixes the peer may send (0 = 100000).
	MaxPrefixes uint32 `json:"maxPrefixes"`
	// BFD, when present (even empty: `bfd: {}`), runs single-hop BFD with
	// the session; unset timers take petrel's defaults.
	BFD *BFDFile `json:"bfd"`
	// LongLivedStaleTime turns on long-lived graceful restart (RFC 9494):
	// how long the peer's routes are kept, depreferred, after it goes away.
	LongLivedStaleTime string `json:"longLivedStaleTime"`
}

// BFDFile is a peer's `bfd` section, named as Calico Enterprise's
// BFDConfiguration interface entries.
type BFDFile struct {
	MinimumRecvInterval string `json:"minimumRecvInterval"`
	MinimumSendInterval string `json:"minimumSendInterval"`
	Multiplier          uint8  `json:"multiplier"`
}

// KernelFile is the `kernel` section, used by kernel sync.
type KernelFile struct {
	Enabled     *bool    `json:"enabled"`
	Protocol    int      `json:"protocol"`
	Table       uint32   `json:"table"`
	ScanTime    string   `json:"scanTime"`
	Learn       *bool    `json:"learn"`
	Interfaces  []string `json:"interfaces"`
	RestartWait string   `json:"restartWait"`
}

// Config is a validated standalone configuration.
type Config struct {
	NodeName      string
	RouterID      netip.Addr
	ASN           uint32
	ListenAddress netip.Addr // invalid = all addresses
	ListenPort    int32
	Socket        string
	LogLevel      slog.Level
	Peers         []bgp.PeerConfig
	Originate     []netip.Prefix
	// Export lists ranges inside which locally learned routes (kernel,
	// direct) may be advertised, on top of the originated prefixes.
	Export []netip.Prefix
	Kernel Kernel
}

// Kernel holds the kernel sync settings.
type Kernel struct {
	Enabled     bool
	Protocol    int
	Table       uint32
	ScanTime    time.Duration
	Learn       bool
	Interfaces  []string // protocol direct's ordered patterns
	RestartWait time.Duration
}

// DefaultKernel is kernel sync as calico-node's bird.cfg runs it: on,
// protocol 12 in the main table, learning alien routes, scanning every 2 s,
// protocol direct on every interface but workloads'.
func DefaultKernel() Kernel {
	return Kernel{
		Enabled:     true,
		Protocol:    DefaultKernelProtocol,
		Table:       DefaultKernelTable,
		ScanTime:    DefaultScanTime,
		Learn:       true,
		Interfaces:  DefaultInterfaces,
		RestartWait: DefaultRestartWait,
	}
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse validates a YAML document.
func Parse(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, err
	}
	if generic == nil {
		generic = map[string]any{}
	}
	if err := checkShape(generic, fileType, ""); err != nil {
		return nil, err
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, err // checkShape has already explained every error users make
	}
	return f.validate()
}
