package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/ipam"
	"github.com/petrel-net/petrel/workload"
)

// Opener opens the datastore, runs fn on it and closes it. Commands check
// their arguments before they call it, so a mistake is reported without
// waiting for the datastore.
type Opener func(fn func(datastore.Backend) error) error

// ipamClient runs fn with an IPAM client on the datastore open opens.
func (open Opener) ipamClient(fn func(*ipam.Client) error) error {
	return open(func(b datastore.Backend) error { return fn(ipam.New(b)) })
}

// ErrIPAMCheckFailed makes `petrel ipam check` exit 1 after its report.
var ErrIPAMCheckFailed = errors.New("ipam check found problems")

// ApplyFile is `petrel apply -f FILE` (- for stdin): every object is
// decoded before anything is written.
func ApplyFile(ctx context.Context, file string, stdin io.Reader, open Opener, out io.Writer) error {
	objs, err := readObjects(file, stdin)
	if err != nil {
		return err
	}
	return open(func(b datastore.Backend) error { return Apply(ctx, b, objs, out) })
}

// readObjects decodes the resources of file ("-": stdin); nothing is
// written anywhere when any object is invalid.
func readObjects(file string, stdin io.Reader) ([]datastore.Object, error) {
	var data []byte
	var err error
	switch file {
	case "":
		return nil, fmt.Errorf("apply: -f FILE is required")
	case "-":
		data, err = io.ReadAll(stdin)
	default:
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, err
	}
	objs, err := datastore.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return objs, nil
}

// Get is `petrel get KIND [NAME]`. A list with undecodable objects shows
// the good ones, then fails naming the bad ones.
func Get(ctx context.Context, kindArg, name, output string, open Opener, out io.Writer) error {
	kind, err := datastore.ParseKind(kindArg)
	if err != nil {
		return err
	}
	return open(func(b datastore.Backend) error {
		var objs []datastore.Object
		if name != "" {
			o, err := b.Get(ctx, kind, name)
			if err != nil {
				return err
			}
			objs = []datastore.Object{o}
		} else if objs, _, err = b.List(ctx, kind); err != nil {
			if _, partial := datastore.SkippedObjects(err); !partial {
				return err
			}
		}
		if werr := WriteObjects(out, objs, output); werr != nil {
			return werr
		}
		return err
	})
}

// Delete is `petrel delete KIND NAME`.
func Delete(ctx context.Context, kindArg, name string, open Opener, out io.Writer) error {
	kind, err := datastore.ParseKind(kindArg)
	if err != nil {
		return err
	}
	return open(func(b datastore.Backend) error {
		if err := b.Delete(ctx, kind, name, ""); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s %q deleted\n", kind, name)
		return nil
	})
}

// AllocateRequest is `petrel ipam allocate`'s flags.
type AllocateRequest struct {
	Node, Handle, Namespace, Pod string
	Pool                         string // a CIDR: one address of its family, from it only
	IP                           string // this exact address
	IPv4, IPv6                   bool   // without Pool and IP: one address of each
}

// IPAMAllocate allocates req.IP, or one address of each requested family
// (of Pool's family) from the node's blocks, and prints them, IPv4 first.
func IPAMAllocate(ctx context.Context, req AllocateRequest, open Opener, out io.Writer) error {
	if req.Handle == "" {
		return errors.New("allocate: --handle is required")
	}
	attrs := map[string]string{"node": req.Node, "timestamp": time.Now().UTC().String()}
	if req.Namespace != "" {
		attrs["namespace"] = req.Namespace
	}
	if req.Pod != "" {
		attrs["pod"] = req.Pod
	}
	args := ipam.AssignArgs{Node: req.Node, Handle: req.Handle, Attrs: attrs}
	switch {
	case req.IP != "":
	case req.Pool != "":
		p, err := netip.ParsePrefix(req.Pool)
		if err != nil {
			return fmt.Errorf("--pool %q: not a CIDR", req.Pool)
		}
		args.Pools = []netip.Prefix{p}
		if p.Addr().Is4() {
			args.Num4 = 1
		} else {
			args.Num6 = 1
		}
	case !req.IPv4 && !req.IPv6:
		return errors.New("allocate: --ipv4=false and --ipv6=false: no address family left to assign")
	default:
		if req.IPv4 {
			args.Num4 = 1
		}
		if req.IPv6 {
			args.Num6 = 1
		}
	}
	return open.ipamClient(func(c *ipam.Client) error {
		if req.IP != "" {
			addr, err := netip.ParseAddr(req.IP)
			if err != nil {
				return fmt.Errorf("--ip %q: not an IP address", req.IP)
			}
			if err := c.AssignIP(ctx, req.Node, addr, req.Handle, attrs); err != nil {
				return err
			}
			fmt.Fprintln(out, addr)
			return nil
		}
		addrs, err := c.AutoAssign(ctx, args)
		if err != nil {
			return err
		}
		for _, a := range addrs {
			fmt.Fprintln(out, a)
		}
		return nil
	})
}

// ReleaseRequest is `petrel ipam release`'s flags: one of Handle and IP.
type ReleaseRequest struct {
	Node, Handle, IP string
	// ReleaseEmptyBlocks then gives the node's empty blocks back.
	ReleaseEmptyBlocks bool
}

// IPAMRelease releases a handle's addresses or one address.
func IPAMRelease(ctx context.Context, req ReleaseRequest, open Opener, out io.Writer) error {
	if (req.Handle == "") == (req.IP == "") {
		return errors.New("release: give exactly one of --handle and --ip")
	}
	return open.ipamClient(func(c *ipam.Client) error {
		var n int
		var err error
		if req.Handle != "" {
			n, err = c.ReleaseByHandle(ctx, req.Handle)
		} else {
			addr, perr := netip.ParseAddr(req.IP)
			if perr != nil {
				return fmt.Errorf("--ip %q: not an IP address", req.IP)
			}
			n, err = c.ReleaseIPs(ctx, addr)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "released %d address(es)\n", n)
		if !req.ReleaseEmptyBlocks {
			return nil
		}
		blocks, err := c.ReleaseEmptyBlocks(ctx, req.Node)
		if err != nil {
			return err
		}
		for _, b := range blocks {
			fmt.Fprintf(out, "released block %s of node %s\n", b, req.Node)
		}
		return nil
	})
}

// IPAMShow prints the pools' use and, with showBlocks, every node's blocks.
func IPAMShow(ctx context.Context, showBlocks bool, open Opener, out io.Writer) error {
	return open(func(b datastore.Backend) error {
		c := ipam.New(b)
		usage, err := c.Usage(ctx)
		if err != nil {
			return err
		}
		blocks := map[string][]ipam.BlockInfo{}
		if showBlocks {
			nodes, _, err := b.List(ctx, datastore.KindNode)
			if err != nil {
				return err
			}
			for _, n := range nodes {
				if blocks[n.GetName()], err = c.NodeBlocks(ctx, n.GetName()); err != nil {
					return err
				}
			}
		}
		return WriteIPAMUsage(out, usage, blocks)
	})
}

// IPAMCheck prints the cross-check's report; ErrIPAMCheckFailed when it
// found problems.
func IPAMCheck(ctx context.Context, open Opener, out io.Writer) error {
	return open.ipamClient(func(c *ipam.Client) error {
		r, err := c.Check(ctx)
		if err != nil {
			return err
		}
		WriteIPAMCheck(out, r)
		if !r.OK() {
			return ErrIPAMCheckFailed
		}
		return nil
	})
}

// WorkloadRequest is `petrel workload add/del`'s flags.
type WorkloadRequest struct {
	Name        string // NAMESPACE/POD
	NetNS       string // a name under /var/run/netns, or a path
	ContainerID string // for the IPAM handle; derived from Name when empty
	Node        string
	MTU         int
	// IPv4 and IPv6 choose the pod's address families (add only; del
	// releases whatever the handle holds).
	IPv4, IPv6 bool
}

// pod is the request as a workload.Pod.
func (r WorkloadRequest) pod() (workload.Pod, error) {
	ns, name, ok := strings.Cut(r.Name, "/")
	if !ok || ns == "" || name == "" {
		return workload.Pod{}, fmt.Errorf("--name %q: want NAMESPACE/POD", r.Name)
	}
	p := workload.Pod{Namespace: ns, Name: name, Node: r.Node, Handle: workload.Handle(workloadID(r.Name, r.ContainerID)), MTU: r.MTU,
		Families: workload.Families{IPv4: r.IPv4, IPv6: r.IPv6}}
	if r.NetNS != "" {
		p.NetNS = netnsPath(r.NetNS)
	}
	return p, nil
}

// WorkloadAdd allocates the pod's addresses (req.IPv4, req.IPv6), plumbs
// the pod, and prints the addresses, one a line, IPv4 first. The namespace
// is checked before the datastore is opened.
func WorkloadAdd(ctx context.Context, req WorkloadRequest, open Opener, out io.Writer) error {
	p, err := req.pod()
	if err != nil {
		return err
	}
	if req.NetNS == "" {
		return errors.New("add: --netns is required")
	}
	if !req.IPv4 && !req.IPv6 {
		return errors.New("add: --ipv4=false and --ipv6=false: no address family left to assign")
	}
	if err := workload.CheckNetNS(p.NetNS); err != nil {
		return fmt.Errorf("--netns %q: %w", req.NetNS, err)
	}
	return open.ipamClient(func(c *ipam.Client) error {
		addrs, _, err := workload.Add(ctx, c, p)
		if err != nil {
			return err
		}
		for _, a := range addrs.List() {
			fmt.Fprintln(out, a)
		}
		return nil
	})
}

// WorkloadDel unplumbs the pod, before opening the datastore (the veth
// goes even when the datastore is down), then releases its address.
func WorkloadDel(ctx context.Context, req WorkloadRequest, open Opener, out io.Writer) error {
	p, err := req.pod()
	if err != nil {
		return err
	}
	if err := workload.Unplumb(ctx, p); err != nil {
		return err
	}
	return open.ipamClient(func(c *ipam.Client) error {
		n, err := workload.Release(ctx, c, p.Handle)
		if err == nil {
			fmt.Fprintf(out, "removed %s, released %d address(es)\n", req.Name, n)
		}
		return err
	})
}

// workloadID names the pod for IPAM: the container id when given, else a
// stable digest of NAMESPACE/POD, so add and del agree without state.
func workloadID(name, containerID string) string {
	if containerID != "" {
		return containerID
	}
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

// netnsPath accepts a name from `ip netns` or a path.
func netnsPath(s string) string {
	if strings.Contains(s, "/") {
		return s
	}
	return filepath.Join("/var/run/netns", s)
}
