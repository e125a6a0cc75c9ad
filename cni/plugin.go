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
	return workload.Pod{Namespace: ns, Name: name, Node: c.Nodename, Handle: workload.Handle(args.ContainerID), NetNS: args.Netns, MTU: c.MTU}
}

func checkIfName(args *skel.CmdArgs) error {
	if args.IfName != PodIfName {
		return fmt.Errorf("CNI_IFNAME %q: petrel names the pod interface %s; only CNI_IFNAME=%s is supported", args.IfName, PodIfName, PodIfName)
	}
	return nil
}

// firstIPv4 is the first IPv4 address of an IPAM result.
func firstIPv4(r types.Result) (netip.Addr, error) {
	res, err := types100.NewResultFromResult(r)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("IPAM result: %w", err)
	}
	for _, ip := range res.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok && a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, errors.New("IPAM result has no IPv4 address")
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
	addr, err := firstIPv4(ipamRes)
	if err != nil {
		return release(err)
	}
	hostIf, err := workload.Plumb(ctx, p, addr)
	if err != nil {
		return release(err)
	}
	podMAC, err := linkMAC(p.NetNS, PodIfName)
	if err != nil {
		return release(errors.Join(err, workload.Unplumb(ctx, p)))
	}
	res := result(hostIf, podMAC, p.NetNS, addr)
	if r100, err := types100.NewResultFromResult(ipamRes); err == nil {
		res.DNS = r100.DNS
	}
	return types.PrintResult(res, c.CNIVersion)
}

// result is the CNI result of a plumbed pod: the host veth and the pod's
// eth0, its address on eth0, and its default route via Calico's gateway.
func result(hostIf string, podMAC net.HardwareAddr, netns string, addr netip.Addr) *types100.Result {
	podIdx := 1
	return &types100.Result{
		CNIVersion: types100.ImplementedSpecVersion,
		Interfaces: []*types100.Interface{
			{Name: hostIf, Mac: dataplane.WorkloadHostMAC.String()},
			{Name: PodIfName, Mac: podMAC.String(), Sandbox: netns},
		},
		IPs: []*types100.IPConfig{{
			Interface: &podIdx,
			Address:   net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)},
		}},
		Routes: []*types.Route{{
			Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
			GW:  dataplane.WorkloadGatewayV4.AsSlice(),
		}},
	}
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
	addr, err := firstIPv4(c.PrevResult)
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
	return workload.Check(ctx, p, addr)
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
		addr, err := workload.Allocate(ctx, cl, pod(args, c))
		if err != nil {
			return err
		}
		res := &types100.Result{
			CNIVersion: types100.ImplementedSpecVersion,
			IPs:        []*types100.IPConfig{{Address: net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}}},
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
	return runIPAM(args, func(ctx context.Context, _ *NetConf, cl *ipam.Client) error {
		handle := workload.Handle(args.ContainerID)
		addrs, err := cl.HandleAddrs(ctx, handle)
		if err != nil {
			return err
		}
		if len(addrs) == 0 {
			return fmt.Errorf("no address allocated to %s", handle)
		}
		return nil
	})
}
