package harness

import (
	"io"
	"net"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// ForwardHostLoopback makes a service listening on the host's loopback at
// addr (say a kube-apiserver a test started) reachable at the same addr
// from inside the node's namespace: a listener created in the namespace
// relays each connection to the host's addr. Traffic stays on the two
// loopbacks; the listener goes when the test ends.
func (n *Node) ForwardHostLoopback(t testing.TB, addr string) {
	t.Helper()
	ln, err := listenInNamespace(n.NS, addr)
	if err != nil {
		t.Fatalf("harness: listen on %s in %s: %v", addr, n.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(in, addr)
		}
	}()
}

// listenInNamespace opens a TCP listener inside namespace ns. A socket
// stays in the namespace it was made in, so only this call needs the
// thread switched; everything after runs on any thread.
func listenInNamespace(ns, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	host, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer host.Close()
	target, err := netns.GetFromName(ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if netns.Set(host) == nil {
		runtime.UnlockOSThread() // else the thread dies with this goroutine
	}
	return ln, err
}

// relay copies both ways until either side closes, then closes both.
func relay(in net.Conn, addr string) {
	defer in.Close()
	out, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer out.Close()
	go func() {
		_, _ = io.Copy(out, in)
		out.Close()
		in.Close()
	}()
	_, _ = io.Copy(in, out)
}
