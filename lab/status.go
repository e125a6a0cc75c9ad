package lab

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/petrel-net/petrel/cli"
)

// Report is what Status found wrong; Healthy when nothing.
type Report struct {
	Problems []string
}

// Healthy reports whether every process runs, every session is
// Established and every pod reaches every other without loss.
func (r Report) Healthy() bool { return len(r.Problems) == 0 }

// Status writes the lab's nodes, each petrel node's sessions (like petrel
// status), each BIRD's protocols, the pods and a pod-to-pod ping matrix.
func Status(name string, w io.Writer) (Report, error) {
	var rep Report
	s, err := Load(name)
	if err != nil {
		return rep, err
	}
	procs := map[string]string{} // "<node>-<proc>" -> state
	for _, n := range s.Nodes {
		for _, p := range []string{"etcd", "petrel", "bird", "zebra", "staticd", "bgpd"} {
			if pid, ok := pidFile(name, n.Name+"-"+p); ok {
				if alive(pid) {
					procs[n.Name] += fmt.Sprintf("%s (pid %d) ", p, pid)
				} else {
					procs[n.Name] += p + " (not running) "
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s on %s is not running", p, n.Name))
				}
			}
		}
	}
	fmt.Fprintf(w, "Lab %s (%s)", s.Name, s.Topology)
	if s.EtcdURL != "" {
		fmt.Fprintf(w, ", etcd %s", s.EtcdURL)
	}
	if !s.Ready {
		fmt.Fprint(w, " — up did not finish")
		rep.Problems = append(rep.Problems, "up did not finish")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tKIND\tROLE\tADDRESS\tNETNS\tPROCESSES")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Kind, orDash(n.Role), orDash(n.Addr), n.NS, orDash(strings.TrimSpace(procs[n.Name])))
	}
	tw.Flush()

	for _, n := range s.Nodes {
		switch {
		case n.Role == "node" && n.Socket != "":
			fmt.Fprintln(w)
			ps, err := peers(n.Socket)
			if err != nil {
				fmt.Fprintf(w, "%s: %v\n", n.Name, err)
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", n.Name, err))
				continue
			}
			e := established(ps)
			fmt.Fprintf(w, "%s: %d/%d sessions Established\n", n.Name, e, len(ps))
			if e != len(ps) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %d of %d sessions Established", n.Name, e, len(ps)))
			}
			cli.WriteStatus(w, ps, time.Now())
		case n.Role == "bird" && n.Socket != "":
			fmt.Fprintln(w)
			out, err := run("birdc", "-s", n.Socket, "show", "protocols")
			if err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: birdc: %v", n.Name, err))
			}
			fmt.Fprintf(w, "%s (BIRD):\n%s", n.Name, out)
		case n.Role == "frr" && n.Socket != "":
			fmt.Fprintln(w)
			out, err := run("vtysh", "--vty_socket", n.Socket, "-c", "show bgp summary")
			if err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s: vtysh: %v", n.Name, err))
			}
			fmt.Fprintf(w, "%s (FRR):\n%s", n.Name, out)
		}
	}

	if len(s.Pods) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "POD\tNODE\tADDRESS")
		for _, p := range s.Pods {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.Node, orDash(p.Addr))
		}
		tw.Flush()
	}
	if len(s.Pods) > 1 {
		loss := map[[2]string]int{}
		for _, r := range PingMatrix(s.Pods, 3) {
			loss[[2]string{r.From, r.To}] = r.Loss
			if r.Loss != 0 {
				rep.Problems = append(rep.Problems, fmt.Sprintf("ping %s -> %s: %d%% loss", r.From, r.To, r.Loss))
			}
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Ping matrix (packet loss, 3 echoes, row pings column):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprint(tw, "FROM \\ TO")
		for _, p := range s.Pods {
			fmt.Fprintf(tw, "\t%s", short(p.Name))
		}
		fmt.Fprintln(tw)
		for _, from := range s.Pods {
			fmt.Fprint(tw, short(from.Name))
			for _, to := range s.Pods {
				if from.Name == to.Name {
					fmt.Fprint(tw, "\t-")
					continue
				}
				fmt.Fprintf(tw, "\t%d%%", loss[[2]string{from.Name, to.Name}])
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if rep.Healthy() {
		fmt.Fprintln(w, "Healthy: every session Established, every pod reaches every other pod.")
	} else {
		fmt.Fprintf(w, "Problems:\n  %s\n", strings.Join(rep.Problems, "\n  "))
	}
	return rep, nil
}

func short(pod string) string { _, p, _ := strings.Cut(pod, "/"); return p }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
