package config

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path"
	"strings"
	"time"

	"github.com/petrel-net/petrel/bgp"
)

// maxRestartTime is the largest restart time the 12-bit field of the
// graceful restart capability can carry.
const maxRestartTime = 4095 * time.Second

func (f *File) validate() (*Config, error) {
	c := &Config{
		NodeName: f.NodeName,
		ASN:      f.ASNumber,
		Socket:   f.Socket,
		Kernel: Kernel{
			Enabled:  f.Kernel.Enabled == nil || *f.Kernel.Enabled,
			Protocol: f.Kernel.Protocol,
			Table:    f.Kernel.Table,
			Learn:    f.Kernel.Learn == nil || *f.Kernel.Learn,
		},
	}
	if c.NodeName == "" {
		c.NodeName, _ = os.Hostname()
	}
	if c.ASN == 0 {
		c.ASN = bgp.DefaultASN
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	var err error
	if c.LogLevel, err = parseLevel(f.LogLevel); err != nil {
		return nil, err
	}
	if f.Listen.Address != "" {
		if c.ListenAddress, err = parseAddr("listen.address", f.Listen.Address); err != nil {
			return nil, err
		}
	}
	switch port := f.Listen.Port; {
	case port == 0:
		c.ListenPort = bgp.DefaultPort
	case port < 1 || port > 65535:
		return nil, fmt.Errorf("listen.port: %d is not a TCP port (1-65535)", port)
	default:
		c.ListenPort = port
	}
	if err := c.setRouterID(f.RouterID); err != nil {
		return nil, err
	}
	if err := c.setPeers(f.Peers); err != nil {
		return nil, err
	}
	if c.Originate, err = parsePrefixes("originate", f.Originate); err != nil {
		return nil, err
	}
	if c.Export, err = parsePrefixes("export", f.Export); err != nil {
		return nil, err
	}
	if err := c.setKernel(f.Kernel); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) setRouterID(s string) error {
	if s == "" {
		if c.ListenAddress.Is4() {
			c.RouterID = c.ListenAddress
			return nil
		}
		return fmt.Errorf("routerID: required (an IPv4 address, normally the node's own), or set listen.address to an IPv4 address")
	}
	id, err := parseAddr("routerID", s)
	if err != nil {
		return err
	}
	if !id.Is4() {
		return fmt.Errorf("routerID: %q must be an IPv4 address", s)
	}
	c.RouterID = id
	return nil
}

func (c *Config) setPeers(peers []PeerFile) error {
	seen := map[netip.Addr]int{}
	for i, pf := range peers {
		key := fmt.Sprintf("peers[%d]", i)
		p, err := pf.peerConfig(key)
		if err != nil {
			return err
		}
		if j, dup := seen[p.Address]; dup {
			return fmt.Errorf("%s.address: %s is already configured as peers[%d]", key, p.Address, j)
		}
		seen[p.Address] = i
		c.Peers = append(c.Peers, p)
	}
	return nil
}

func (pf PeerFile) peerConfig(key string) (bgp.PeerConfig, error) {
	p := bgp.PeerConfig{
		Name:            pf.Name,
		ASN:             pf.ASNumber,
		Port:            pf.Port,
		Password:        pf.Password,
		Multihop:        pf.Multihop,
		Passive:         pf.Passive,
		GracefulRestart: pf.GracefulRestart == nil || *pf.GracefulRestart, // on by default, as in bird.cfg
		AddPaths:        pf.AddPaths == nil || *pf.AddPaths,               // "add paths on"
		MaxPrefixes:     pf.MaxPrefixes,
		TTLSecurity:     pf.TTLSecurity,
		AllowOwnAS:      pf.AllowLocalAS,
	}
	var err error
	if pf.Address == "" {
		return p, fmt.Errorf("%s.address: required", key)
	}
	if p.Address, err = parseAddr(key+".address", pf.Address); err != nil {
		return p, err
	}
	if p.ASN == 0 {
		return p, fmt.Errorf("%s.asNumber: required (peer %s)", key, pf.Address)
	}
	if pf.SourceAddress != "" {
		if p.SourceAddress, err = parseAddr(key+".sourceAddress", pf.SourceAddress); err != nil {
			return p, err
		}
		if p.SourceAddress.Is4() != p.Address.Is4() {
			return p, fmt.Errorf("%s.sourceAddress: %s is not the same address family as address %s", key, pf.SourceAddress, pf.Address)
		}
	}
	if len(p.Password) > 80 {
		return p, fmt.Errorf("%s.password: longer than the 80 bytes TCP MD5 allows (peer %s)", key, pf.Address)
	}
	if p.RestartTime, err = parseDuration(key+".restartTime", pf.RestartTime, 0); err != nil {
		return p, err
	}
	if p.RestartTime > maxRestartTime {
		return p, fmt.Errorf("%s.restartTime: %q is longer than the %s graceful restart allows", key, pf.RestartTime, maxRestartTime)
	}
	if p.KeepaliveTime, err = parseDuration(key+".keepaliveTime", pf.KeepaliveTime, 0); err != nil {
		return p, err
	}
	if p.KeepaliveTime != 0 && p.KeepaliveTime < time.Second {
		return p, fmt.Errorf("%s.keepaliveTime: %q is shorter than 1s", key, pf.KeepaliveTime)
	}
	if p.HoldTime, err = parseDuration(key+".holdTime", pf.HoldTime, 0); err != nil {
		return p, err
	}
	if p.HoldTime != 0 && (p.HoldTime < 3*time.Second || p.HoldTime > 65535*time.Second) {
		return p, fmt.Errorf("%s.holdTime: %q is outside the 3s-65535s BGP allows", key, pf.HoldTime)
	}
	if p.TTLSecurity > 0 && p.Multihop > 0 {
		return p, fmt.Errorf("%s.ttlSecurity: cannot be used together with multihop (GTSM sends with TTL 255)", key)
	}
	if p.LongLivedStaleTime, err = parseDuration(key+".longLivedStaleTime", pf.LongLivedStaleTime, 0); err != nil {
		return p, err
	}
	if b := pf.BFD; b != nil {
		p.BFD = bgp.BFDConfig{Enabled: true, Multiplier: b.Multiplier}
		if p.BFD.MinRx, err = parseDuration(key+".bfd.minimumRecvInterval", b.MinimumRecvInterval, 0); err != nil {
			return p, err
		}
		if p.BFD.MinTx, err = parseDuration(key+".bfd.minimumSendInterval", b.MinimumSendInterval, 0); err != nil {
			return p, err
		}
	}
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%s: %w", key, err)
	}
	return p, nil
}

func parsePrefixes(key string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		key := fmt.Sprintf("%s[%d]", key, i)
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a CIDR prefix (like 192.168.0.0/26)", key, s)
		}
		if p != p.Masked() {
			return nil, fmt.Errorf("%s: %q has host bits set; did you mean %s?", key, s, p.Masked())
		}
		out = append(out, p)
	}
	return out, nil
}

func (c *Config) setKernel(k KernelFile) error {
	enabled, learn := c.Kernel.Enabled, c.Kernel.Learn
	c.Kernel = DefaultKernel()
	c.Kernel.Enabled, c.Kernel.Learn = enabled, learn
	if k.Protocol != 0 {
		if err := checkProtocol("kernel.protocol", k.Protocol); err != nil {
			return err
		}
		c.Kernel.Protocol = k.Protocol
	}
	if k.Table != 0 {
		c.Kernel.Table = k.Table
	}
	var err error
	if c.Kernel.ScanTime, err = parseDuration("kernel.scanTime", k.ScanTime, DefaultScanTime); err != nil {
		return err
	}
	if c.Kernel.RestartWait, err = parseDuration("kernel.restartWait", k.RestartWait, DefaultRestartWait); err != nil {
		return err
	}
	if k.Interfaces != nil {
		c.Kernel.Interfaces = k.Interfaces
	}
	return checkInterfaces("kernel.interfaces", c.Kernel.Interfaces)
}

// checkProtocol refuses the route protocols that are not petrel's to use.
func checkProtocol(key string, p int) error {
	if p < 5 || p > 255 {
		// 0-4 are the kernel's own (unspec, redirect, kernel, boot, static):
		// petrel would treat the operator's routes as its own.
		return fmt.Errorf("%s: %d must be 5-255 (0-4 belong to the kernel and to static routes)", key, p)
	}
	return nil
}

// checkInterfaces validates protocol direct's patterns ("eth*", "-cali*").
func checkInterfaces(key string, patterns []string) error {
	for i, pat := range patterns {
		if _, err := path.Match(strings.TrimPrefix(pat, "-"), ""); err != nil || strings.TrimPrefix(pat, "-") == "" {
			return fmt.Errorf("%s[%d]: %q is not an interface pattern (like \"eth*\" or \"-cali*\")", key, i, pat)
		}
	}
	return nil
}

func parseAddr(key, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s: %q is not an IP address", key, s)
	}
	return a, nil
}

func parseDuration(key, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s: %q is not a positive duration (like 2s or 120s)", key, s)
	}
	return d, nil
}

func parseLevel(s string) (slog.Level, error) {
	if s == "" {
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("logLevel: %q is not one of debug, info, warn, error", s)
	}
	return l, nil
}
