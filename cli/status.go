package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	petrelpb "github.com/petrel-net/petrel/proto"
)

// PeerRow is one peer as `petrel status -o json` prints it.
type PeerRow struct {
	Address            string    `json:"peerAddress"`
	Name               string    `json:"name"`
	Type               string    `json:"peerType"`
	State              string    `json:"state"`
	BGPState           string    `json:"bgpState"`
	Since              time.Time `json:"since"`
	Info               string    `json:"info"`
	ASNumber           uint32    `json:"asNumber"`
	PrefixesReceived   uint64    `json:"prefixesReceived"`
	PrefixesAccepted   uint64    `json:"prefixesAccepted"`
	PrefixesAdvertised uint64    `json:"prefixesAdvertised"`
	// PasswordSet says a TCP MD5 password is configured, never which.
	PasswordSet     bool    `json:"passwordSet"`
	MaxPrefixes     uint32  `json:"maxPrefixes"`
	PrefixLimitHits uint32  `json:"prefixLimitHits"`
	BFD             *BFDRow `json:"bfd,omitempty"`
	// LLGRStaleTime is the long-lived graceful restart stale time, when on.
	LLGRStaleTime string `json:"llgrStaleTime,omitempty"`
}

// BFDRow is a peer's BFD session and timers.
type BFDRow struct {
	State      string `json:"state"`
	MinRxMs    uint32 `json:"minRxMs"`
	MinTxMs    uint32 `json:"minTxMs"`
	Multiplier uint32 `json:"multiplier"`
}

func peerRows(peers []*petrelpb.Peer) []PeerRow {
	rows := make([]PeerRow, 0, len(peers))
	for _, p := range peers {
		rows = append(rows, PeerRow{
			Address: p.Address, Name: p.Name, Type: p.Type,
			State:    birdState(p.State),
			BGPState: p.State, Since: p.Since.AsTime().Local(), Info: p.Info, ASNumber: p.AsNumber,
			PrefixesReceived: p.PrefixesReceived, PrefixesAccepted: p.PrefixesAccepted, PrefixesAdvertised: p.PrefixesAdvertised,
			PasswordSet: p.PasswordSet, MaxPrefixes: p.MaxPrefixes, PrefixLimitHits: p.PrefixLimitHits,
		})
		r := &rows[len(rows)-1]
		if p.BfdState != "" {
			r.BFD = &BFDRow{State: p.BfdState, MinRxMs: p.BfdMinRxMs, MinTxMs: p.BfdMinTxMs, Multiplier: p.BfdMultiplier}
		}
		if p.LlgrStaleTimeS > 0 {
			r.LLGRStaleTime = (time.Duration(p.LlgrStaleTimeS) * time.Second).String()
		}
	}
	return rows
}

// bfdCell is the status table's BFD column: the state and the detection
// time our side applies ("Up 3x200ms").
func (r PeerRow) bfdCell() string {
	if r.BFD == nil {
		return "-"
	}
	return fmt.Sprintf("%s %dx%dms", r.BFD.State, r.BFD.Multiplier, r.BFD.MinRxMs)
}

// birdState is BIRD's protocol state column, which calicoctl shows: "up"
// once the session is established, "start" while it is being brought up.
func birdState(bgpState string) string {
	if bgpState == "Established" {
		return "up"
	}
	return "start"
}

// WriteStatusJSON prints the peers as a JSON array.
func WriteStatusJSON(w io.Writer, peers []*petrelpb.Peer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(peerRows(peers))
}

// WriteStatus prints the table calicoctl node status users know, one
// section per address family; a BFD column joins it when a peer has BFD.
func WriteStatus(w io.Writer, peers []*petrelpb.Peer, now time.Time) {
	fmt.Fprintln(w, "petrel process is running.")
	for _, family := range []string{"IPv4", "IPv6"} {
		var rows []PeerRow
		bfd := false
		for _, r := range peerRows(peers) {
			if strings.Contains(r.Address, ":") == (family == "IPv6") {
				rows = append(rows, r)
				bfd = bfd || r.BFD != nil
			}
		}
		fmt.Fprintf(w, "\n%s BGP status\n", family)
		if len(rows) == 0 {
			fmt.Fprintf(w, "No %s peers found.\n", family)
			continue
		}
		header := []string{"PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO"}
		if bfd {
			header = append(header, "BFD")
		}
		cells := make([][]string, len(rows))
		for i, r := range rows {
			cells[i] = []string{r.Address, r.Type, r.State, since(r.Since, now), r.Info, r.bfdCell()}[:len(header)]
		}
		writeBoxTable(w, header, cells)
	}
}

// since formats like BIRD: the time of day for today, else the date.
func since(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	y1, m1, d1 := t.Date()
	y2, m2, d2 := now.Date()
	if y1 == y2 && m1 == m2 && d1 == d2 {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02")
}

// writeBoxTable draws the +---+ bordered table calicoctl uses.
func writeBoxTable(w io.Writer, header []string, rows [][]string) {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len(c))
		}
	}
	line := func() {
		for _, wd := range widths {
			fmt.Fprint(w, "+", strings.Repeat("-", wd+2))
		}
		fmt.Fprintln(w, "+")
	}
	row := func(cells []string, center bool) {
		for i, c := range cells {
			pad := widths[i] - len(c)
			left := 0
			if center {
				left = pad / 2
			}
			fmt.Fprint(w, "| ", strings.Repeat(" ", left), c, strings.Repeat(" ", pad-left), " ")
		}
		fmt.Fprintln(w, "|")
	}
	line()
	row(header, true)
	line()
	for _, r := range rows {
		row(r, false)
	}
	line()
}

// WriteKernel prints kernel sync's one-line summary.
func WriteKernel(w io.Writer, k *petrelpb.KernelStatus) {
	if k == nil {
		fmt.Fprintln(w, "\nKernel sync is disabled.")
		return
	}
	fmt.Fprintf(w, "\nKernel: %d routes (protocol %d, table %d), %d writes, %d repairs, %d write errors",
		k.FibRoutes, k.Protocol, k.Table, k.Writes, k.Repairs, k.WriteErrors)
	if k.GracefulRestart {
		fmt.Fprint(w, ", graceful restart in progress")
	}
	fmt.Fprintln(w)
}

// WriteServices lists the Service prefixes the node advertises, if any.
func WriteServices(w io.Writer, prefixes []string) {
	if len(prefixes) == 0 {
		return
	}
	fmt.Fprintf(w, "\nService prefixes advertised (%d):\n", len(prefixes))
	for _, p := range prefixes {
		fmt.Fprintln(w, "  "+p)
	}
}

// WriteProblems lists datastore objects the daemon skipped, if any.
func WriteProblems(w io.Writer, problems []string) {
	writeList(w, "\nProblems (objects skipped, everything else applied):", "  ", problems)
}

// writeList prints a header and one indented line per item; nothing
// without items.
func writeList(w io.Writer, header, indent string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintln(w, header)
	for _, it := range items {
		fmt.Fprintln(w, indent+it)
	}
}
