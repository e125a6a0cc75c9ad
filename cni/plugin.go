package cni

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/petrel-net/petrel/dataplane"
	"github.com/petrel-net/petrel/datastore/backends"
	"github.com/petrel-net/petrel/ipam"
	"github.com/petrel-net/petrel/workload"
)

// Versions are the CNI spec versions both plugins speak.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0")

// timeout bounds one plugin call (datastore round trips and netlink).
const timeout = 2 * time.Minute

// Role is the CNI role of a binary invoked as argv0: PluginName,
// IPAMName, or "" (the petrel command line).
func Role(argv0 string) string {
	switch filepath.Base(argv0) {
	case PluginName:
		return PluginName
	case IPAMName:
		return IPAMName
	}
	return ""
}

// Main runs role (from Role) as a CNI plugin and exits.
func Main(role, buildVersion string) {
	// stdout carries the result; logs go to stderr, which the runtime
	// records.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	switch role {
	case PluginName:
		skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck}, Versions, "petrel CNI plugin "+buildVersion)
	case IPAMName:
		skel.PluginMainFuncs(skel.CNIFuncs{Add: ipamAdd, Del: ipamDel, Check: ipamCheck}, Versions, "petrel IPAM plugin "+buildVersion)
	default:
		fmt.Fprintf(os.Stderr, "petrel: unknown CNI role %q\n", role)
		os.Exit(1)
	}
	os.Exit(0)
}

// loadConf is LoadConf with its error as CNI's "invalid network config".
func loadConf(data []byte, needIPAM bool) (*NetConf, error) {
	c, err := LoadConf(data, needIPAM)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	return c, nil
}

func pod(args *skel.CmdArgs, c *NetConf) workload.Pod {
	ns, name := PodIdentity(args.Args, args.ContainerID)
	return workload.Pod{Namespace: ns, Name: name, Node: c.Nodename, Handle: workload.Handle(args.ContainerID), NetNS: args.Netns, MTU: c.MTU,
		Families: c.IPAM.Families}
}

func checkIfName(args *skel.CmdArgs) error {
	if args.IfName != PodIfName {
		return fmt.Errorf("CNI_IFNAME %q: petrel names the pod interface %s; only CNI_IFNAME=%s is supported", args.IfName, PodIfName, PodIfName)
	}
	return nil
}

// resultAddrs is the first address of each family in an IPAM result; it
// must hold one of each family in want.
func resultAddrs(r types.Result, want workload.Families) (workload.Addrs, error) {
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return workload.Addrs{}, fmt.Errorf("IPAM result: %w", err)
	}
	var addrs []netip.Addr
	for _, ip := range res.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok {
			addrs = append(addrs, a)
		}
	}
	got := workload.AddrsOf(addrs)
	if !got.Has(want) {
		return workload.Addrs{}, fmt.Errorf("IPAM result has %v, want an address of %s", got.List(), want)
	}
	return got, nil
}

func cmdAdd(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData, true)
	if err != nil {
		return err
	}
	if err := checkIfName(args); err != nil {
		return err
	}
	p := pod(args, c)
	// Before any allocation: a sandbox without a namespace gets nothing.
	if err := workload.CheckNetNS(p.NetNS); err != nil {
		return fmt.Errorf("CNI_NETNS %q: %w", args.Netns, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	ipamRes, err := invoke.DelegateAdd(ctx, c.IPAM.Type, args.StdinData, nil)
	if err != nil {
		return fmt.Errorf("IPAM plugin %s: %w", c.IPAM.Type, err)
	}
	release := func(err error) error {
		// Nothing half-made stays: the dataplane undid its part, give the
		// address back.
		if derr := invoke.DelegateDel(ctx, c.IPAM.Type, args.StdinData, nil); derr != nil {
			err = errors.Join(err, fmt.Errorf("release address: IPAM plugin %s: %w", c.IPAM.Type, derr))
		}
		return err
	}
	addrs, err := resultAddrs(ipamRes, p.Families)
	if err != nil {
		return release(err)
	}
	hostIf, err := workload.Plumb(ctx, p, addrs)
	if err != nil {
		return release(err)
	}
	podMAC, err := linkMAC(p.NetNS, PodIfName)
	if err != nil {
		return release(errors.Join(err, workload.Unplumb(ctx, p)))
	}
	res := result(hostIf, podMAC, p.NetNS, addrs)
	if r100, err := types100.NewResultFromResult(ipamRes); err == nil {
		res.DNS = r100.DNS
	}
	return types.PrintResult(res, c.CNIVersion)
}

// result is the CNI result of a plumbed pod: the host veth and the pod's
// eth0, its addresses on eth0 (a /32 and a /128) with their gateways, and
// a default route of each family via Calico's gateways.
func result(hostIf string, podMAC net.HardwareAddr, netns string, addrs workload.Addrs) *types100.Result {
	podIdx := 1
	res := &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: hostIf, Mac: dataplane.WorkloadHostMAC.String()},
			{Name: PodIfName, Mac: podMAC.String(), Sandbox: netns},
		},
	}
	for _, a := range addrs.List() {
		gw, dst := dataplane.WorkloadGatewayV4, netip.IPv4Unspecified()
		if a.Is6() {
			gw, dst = dataplane.WorkloadGatewayV6, netip.IPv6Unspecified()
		}
		res.IPs = append(res.IPs, &types100.IPConfig{Interface: &podIdx, Address: hostPrefix(a), Gateway: gw.AsSlice()})
		res.Routes = append(res.Routes, &types.Route{Dst: net.IPNet{IP: dst.AsSlice(), Mask: net.CIDRMask(0, dst.BitLen())}, GW: gw.AsSlice()})
	}
	return res
}

// hostPrefix is a as a CNI address: a /32 or a /128.
func hostPrefix(a netip.Addr) net.IPNet {
	return net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func cmdDel(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData, true)
	if err != nil {
		return err
	}
	if args.IfName != PodIfName {
		return nil // never added: nothing of ours to remove
	}
	p := pod(args, c)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// A missing namespace or veth is no error (the sandbox may be gone).
	if err := workload.Unplumb(ctx, p); err != nil {
		return err
	}
	if err := invoke.DelegateDel(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
		return fmt.Errorf("IPAM plugin %s: %w", c.IPAM.Type, err)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	c, err := loadConf(args.StdinData, true)
	if err != nil {
		return err
	}
	if err := checkIfName(args); err != nil {
		return err
	}
	if err := version.ParsePrevResult(&c.PluginConf); err != nil {
		return fmt.Errorf("config: field \"prevResult\": %w", err)
	}
	if c.PrevResult == nil {
		return errors.New(`config: field "prevResult" is required for CHECK`)
	}
	addrs, err := resultAddrs(c.PrevResult, c.IPAM.Families)
	if err != nil {
		return fmt.Errorf("prevResult: %w", err)
	}
	p := pod(args, c)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := invoke.DelegateCheck(ctx, c.IPAM.Type, args.StdinData, nil); err != nil {
		return fmt.Errorf("IPAM plugin %s: %w", c.IPAM.Type, err)
	}
	if err := workload.CheckNetNS(p.NetNS); err != nil {
		return fmt.Errorf("CNI_NETNS %q: %w", args.Netns, err)
	}
	return workload.Check(ctx, p, addrs)
}

// withIPAM opens the config's datastore for one call.
func withIPAM(c *NetConf, fn func(*ipam.Client) error) error {
	b, _, err := backends.Open(context.Background(), c.Datastore())
	if err != nil {
		return fmt.Errorf("datastore: %w", err)
	}
	defer b.Close()
	return fn(ipam.New(b))
}

// runIPAM is the IPAM plugin's common part: read its config, bound the
// call, open the datastore, and hand fn the IPAM client.
func runIPAM(args *skel.CmdArgs, fn func(ctx context.Context, c *NetConf, cl *ipam.Client) error) error {
	c, err := loadConf(args.StdinData, false)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return withIPAM(c, func(cl *ipam.Client) error { return fn(ctx, c, cl) })
}

func ipamAdd(args *skel.CmdArgs) error {
	return runIPAM(args, func(ctx context.Context, c *NetConf, cl *ipam.Client) error {
		addrs, err := workload.Allocate(ctx, cl, pod(args, c))
		if err != nil {
			return err
		}
		res := &types100.Result{CNIVersion: types100.ImplementedSpecVersion}
		for _, a := range addrs.List() {
			res.IPs = append(res.IPs, &types100.IPConfig{Address: hostPrefix(a)})
		}
		return types.PrintResult(res, c.CNIVersion)
	})
}

func ipamDel(args *skel.CmdArgs) error {
	return runIPAM(args, func(ctx context.Context, _ *NetConf, cl *ipam.Client) error {
		handle := workload.Handle(args.ContainerID)
		n, err := workload.Release(ctx, cl, handle)
		if err == nil {
			fmt.Fprintf(logOut, "petrel-ipam: released %d address(es) of %s\n", n, handle)
		}
		return err
	})
}

// logOut receives the plugins' notes (stderr: stdout is the result).
var logOut io.Writer = os.Stderr

func ipamCheck(args *skel.CmdArgs) error {
	return runIPAM(args, func(ctx context.Context, c *NetConf, cl *ipam.Client) error {
		handle := workload.Handle(args.ContainerID)
		addrs, err := cl.HandleAddrs(ctx, handle)
		if err != nil {
			return err
		}
		if got := workload.AddrsOf(addrs); !got.Has(c.IPAM.Families) {
			return fmt.Errorf("%s holds %v, want an address of %s", handle, got.List(), c.IPAM.Families)
		}
		return nil
	})
}
