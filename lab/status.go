package lab

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/petrel-net/petrel/cli"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// Report is what Status found wrong; Healthy when nothing.
type Report struct {
	Problems []string
}

// Healthy reports whether every process runs, every session is
// Established and every pod reaches every other without loss.
func (r Report) Healthy() bool { return len(r.Problems) == 0 }

// Status writes the lab's nodes, each petrel node's sessions (like petrel
// status), each BIRD's or FRR's sessions, the Service routes (when the lab
// has any: each BIRD's and what each node advertises), the pods and a
// pod-to-pod ping matrix.
func Status(name string, w io.Writer) (Report, error) {
	s, err := Load(name)
	if err != nil {
		return Report{}, err
	}
	st := gatherStatus(s)
	st.render(w)
	return Report{Problems: st.problems}, nil
}

// labStatus is what Status found, gathered before any of it is written.
type labStatus struct {
	state    *State
	procs    map[string]string         // by node: "etcd (pid 12) petrel (not running)"
	sessions []nodeSessions            // of the petrel and router nodes, in node order
	loss     map[int]map[[2]string]int // ping loss in percent, by family and [from, to] pod
	kube     *kubeView                 // a Kubernetes lab's
	services *serviceView              // when the lab has Service ranges or prefixes
	problems []string
}

// nodeSessions is what one node said about its BGP sessions: a petrel
// node's peers (or why it could not be asked), a router's own summary.
type nodeSessions struct {
	node   NodeState
	peers  []*petrelpb.Peer
	err    error
	router string // "BIRD" or "FRR"; "" for a petrel node
	out    string
}

// routerShows says how Status asks each kind of router for its sessions.
var routerShows = map[string]struct {
	label, tool string
	args        func(socket string) []string
}{
	"bird": {"BIRD", "birdc", func(s string) []string { return []string{"-s", s, "show", "protocols"} }},
	"frr":  {"FRR", "vtysh", func(s string) []string { return []string{"--vty_socket", s, "-c", "show bgp summary"} }},
}

func gatherStatus(s *State) *labStatus {
	st := &labStatus{state: s, procs: map[string]string{}}
	st.gatherProcs()
	if !s.Ready {
		st.problem("up did not finish")
	}
	if s.Kube != nil {
		st.gatherKube()
	}
	for _, n := range s.Nodes {
		st.gatherSessions(n)
	}
	st.gatherServices()
	st.gatherPings()
	return st
}

// gatherPings runs a ping matrix per family that two pods or more have;
// any loss is a problem.
func (st *labStatus) gatherPings() {
	st.loss = map[int]map[[2]string]int{}
	for _, family := range Families {
		if len(PodsOf(st.state.Pods, family)) < 2 {
			continue
		}
		ping := "ping"
		if family == 6 {
			ping = "ping -6"
		}
		st.loss[family] = map[[2]string]int{}
		for _, r := range PingMatrix(st.state.Pods, family, 3) {
			st.loss[family][[2]string{r.From, r.To}] = r.Loss
			if r.Loss != 0 {
				st.problem("%s %s -> %s: %d%% loss", ping, r.From, r.To, r.Loss)
			}
		}
	}
}

func (st *labStatus) problem(format string, args ...any) {
	st.problems = append(st.problems, fmt.Sprintf(format, args...))
}

// gatherProcs checks every process that has a pid file.
func (st *labStatus) gatherProcs() {
	for _, n := range st.state.Nodes {
		for _, p := range append([]string{"etcd", "petrel", "bird", "zebra", "staticd", "bgpd"}, kubeProcs...) {
			if pid, ok := pidFile(st.state.Name, n.Name+"-"+p); ok {
				if alive(pid) {
					st.procs[n.Name] += fmt.Sprintf("%s (pid %d) ", p, pid)
				} else {
					st.procs[n.Name] += p + " (not running) "
					st.problem("%s on %s is not running", p, n.Name)
				}
			}
		}
	}
}

// gatherSessions asks a petrel node or a router for its sessions.
func (st *labStatus) gatherSessions(n NodeState) {
	if n.Socket == "" {
		return
	}
	if n.Role == "node" || n.Role == RoleKubeNode {
		ps, err := peers(n.Socket)
		if err != nil {
			st.problem("%s: %v", n.Name, err)
		} else if e := established(ps); e != len(ps) {
			st.problem("%s: %d of %d sessions Established", n.Name, e, len(ps))
		}
		st.sessions = append(st.sessions, nodeSessions{node: n, peers: ps, err: err})
		return
	}
	show, ok := routerShows[n.Role]
	if !ok {
		return
	}
	out, err := run(show.tool, show.args(n.Socket)...)
	if err != nil {
		st.problem("%s: %s: %v", n.Name, show.tool, err)
	}
	st.sessions = append(st.sessions, nodeSessions{node: n, router: show.label, out: out})
}

func (st *labStatus) render(w io.Writer) {
	s := st.state
	fmt.Fprintf(w, "Lab %s (%s)", s.Name, s.Topology)
	if s.EtcdURL != "" {
		fmt.Fprintf(w, ", etcd %s", s.EtcdURL)
	}
	if !s.Ready {
		fmt.Fprint(w, " — up did not finish")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKIND\tROLE\tADDRESS\tNETNS\tPROCESSES")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Kind, orDash(n.Role), orDash(n.addrs(false)), n.NS, orDash(strings.TrimSpace(st.procs[n.Name])))
	}
	tw.Flush()

	if st.kube != nil {
		fmt.Fprintln(w)
		st.kube.render(w)
	}
	for _, ns := range st.sessions {
		fmt.Fprintln(w)
		ns.render(w)
	}
	if st.services != nil {
		fmt.Fprintln(w)
		st.services.render(w)
	}
	if len(s.Pods) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		v6 := len(PodsOf(s.Pods, 6)) > 0
		fmt.Fprint(tw, "POD\tNODE\tADDRESS")
		if v6 {
			fmt.Fprint(tw, "\tIPV6 ADDRESS")
		}
		fmt.Fprintln(tw)
		for _, p := range s.Pods {
			fmt.Fprintf(tw, "%s\t%s\t%s", p.Name, p.Node, orDash(p.Addr))
			if v6 {
				fmt.Fprintf(tw, "\t%s", orDash(p.Addr6))
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	for _, family := range Families {
		if st.loss[family] == nil {
			continue
		}
		fmt.Fprintln(w)
		if len(st.loss) == 1 && family == 4 {
			fmt.Fprintln(w, "Ping matrix (packet loss, 3 echoes, row pings column):")
		} else {
			fmt.Fprintf(w, "IPv%d ping matrix (packet loss, 3 echoes, row pings column):\n", family)
		}
		st.renderPings(w, family)
	}
	fmt.Fprintln(w)
	if len(st.problems) == 0 {
		routers := ""
		if st.services != nil {
			routers = " every router has each Service prefix from exactly the nodes advertising it,"
		}
		over := ""
		if st.loss[6] != nil {
			over = " over IPv4 and IPv6"
			if st.loss[4] == nil {
				over = " over IPv6"
			}
		}
		fmt.Fprintf(w, "Healthy: every session Established,%s every pod reaches every other pod%s.\n", routers, over)
	} else {
		fmt.Fprintf(w, "Problems:\n  %s\n", strings.Join(st.problems, "\n  "))
	}
}

func (ns nodeSessions) render(w io.Writer) {
	switch {
	case ns.router != "":
		fmt.Fprintf(w, "%s (%s):\n%s", ns.node.Name, ns.router, ns.out)
	case ns.err != nil:
		fmt.Fprintf(w, "%s: %v\n", ns.node.Name, ns.err)
	default:
		fmt.Fprintf(w, "%s: %d/%d sessions Established%s\n", ns.node.Name, established(ns.peers), len(ns.peers), byFamily(ns.peers))
		cli.WriteStatus(w, ns.peers, time.Now())
	}
}

// byFamily is " (IPv4 3/3, IPv6 2/3)", Established of all per family,
// when a peer is an IPv6 one; "" otherwise.
func byFamily(ps []*petrelpb.Peer) string {
	var v4, v6 []*petrelpb.Peer
	for _, p := range ps {
		if strings.Contains(p.Address, ":") {
			v6 = append(v6, p)
		} else {
			v4 = append(v4, p)
		}
	}
	if len(v6) == 0 {
		return ""
	}
	return fmt.Sprintf(" (IPv4 %d/%d, IPv6 %d/%d)", established(v4), len(v4), established(v6), len(v6))
}

// renderPings writes family's loss matrix: a row per pod pinging, a
// column per pod pinged.
func (st *labStatus) renderPings(w io.Writer, family int) {
	pods := PodsOf(st.state.Pods, family)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "FROM \\ TO")
	for _, p := range pods {
		fmt.Fprintf(tw, "\t%s", short(p.Name))
	}
	fmt.Fprintln(tw)
	for _, from := range pods {
		fmt.Fprint(tw, short(from.Name))
		for _, to := range pods {
			if from.Name == to.Name {
				fmt.Fprint(tw, "\t-")
				continue
			}
			fmt.Fprintf(tw, "\t%d%%", st.loss[family][[2]string{from.Name, to.Name}])
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func short(pod string) string { _, p, _ := strings.Cut(pod, "/"); return p }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
