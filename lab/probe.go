package lab

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/petrel-net/petrel/cli"
	petrelpb "github.com/petrel-net/petrel/proto"
)

// ask calls a petrel node's API through its socket.
func ask[T any](socket string, call func(context.Context, *cli.Client) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := cli.Dial(ctx, socket)
	if err != nil {
		var zero T
		return zero, err
	}
	defer c.Close()
	return call(ctx, c)
}

// peers lists a petrel node's peers through its socket.
func peers(socket string) ([]*petrelpb.Peer, error) {
	return ask(socket, func(ctx context.Context, c *cli.Client) ([]*petrelpb.Peer, error) {
		resp, err := c.ListPeers(ctx, &petrelpb.ListPeersRequest{})
		return resp.GetPeers(), err
	})
}

// servicePrefixes lists the Service prefixes a petrel node advertises.
func servicePrefixes(socket string) ([]string, error) {
	return ask(socket, func(ctx context.Context, c *cli.Client) ([]string, error) {
		resp, err := c.GetInfo(ctx, &petrelpb.GetInfoRequest{})
		return resp.GetServicePrefixes(), err
	})
}

func established(ps []*petrelpb.Peer) int {
	n := 0
	for _, p := range ps {
		if p.State == "Established" {
			n++
		}
	}
	return n
}

// PingResult is one cell of the ping matrix.
type PingResult struct {
	From, To string
	Loss     int // percent; 100 when ping could not run
}

// Families are the address families of a lab's ping matrices.
var Families = []int{4, 6}

// AddrOf is the pod's address of family (4 or 6), "" when it has none.
func (p PodState) AddrOf(family int) string {
	if family == 6 {
		return p.Addr6
	}
	return p.Addr
}

// PodsOf are the pods with an address of family.
func PodsOf(pods []PodState, family int) []PodState {
	var res []PodState
	for _, p := range pods {
		if p.AddrOf(family) != "" {
			res = append(res, p)
		}
	}
	return res
}

// PingMatrix pings every pod with an address of family (4 or 6) from
// every other such pod (count echoes each, all pairs in parallel) and
// returns the loss per pair.
func PingMatrix(pods []PodState, family, count int) []PingResult {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var res []PingResult
	pods = PodsOf(pods, family)
	for _, from := range pods {
		for _, to := range pods {
			if from.Name == to.Name {
				continue
			}
			wg.Go(func() {
				loss := 100
				out, _ := inNS(from.NS, "ping", "-"+strconv.Itoa(family), "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", "-q", to.AddrOf(family))
				if i := strings.Index(out, "% packet loss"); i > 0 {
					j := strings.LastIndexAny(out[:i], " ,") + 1
					if v, err := strconv.ParseFloat(out[j:i], 64); err == nil {
						loss = int(v + 0.5)
					}
				}
				mu.Lock()
				res = append(res, PingResult{From: from.Name, To: to.Name, Loss: loss})
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	return res
}
