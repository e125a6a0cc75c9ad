// Package testenv holds what the test environments (etcd, kube-apiserver)
// share.
package testenv

import (
	"net"
	"testing"
)

// FreePort asks the kernel for a free loopback port. It is released before
// use, so another process could take it in between; good enough for tests.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
