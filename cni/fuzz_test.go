package cni

import (
	"encoding/json"
	"os"
	"testing"
)

// FuzzLoadConf: the CNI config parser never panics; what it accepts has
// a type, a datastore it can name and an MTU in range.
func FuzzLoadConf(f *testing.F) {
	f.Add([]byte(`{"type":"petrel-cni","ipam":{"type":"petrel-ipam"},"etcd_endpoints":"http://10.0.0.100:2379","mtu":1450,"nodename":"n1"}`), true)
	f.Add([]byte(`{"type":"petrel-ipam","datastore_type":"kubernetes","kubernetes":{"kubeconfig":"/k"}}`), false)
	f.Add([]byte(`{"type":"petrel-cni","mtu":"big"}`), true)
	if conflist, err := os.ReadFile("10-petrel.conflist"); err == nil {
		var list struct{ Plugins []json.RawMessage }
		if json.Unmarshal(conflist, &list) == nil {
			for _, p := range list.Plugins {
				f.Add([]byte(p), true)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, needIPAM bool) {
		c, err := LoadConf(data, needIPAM)
		if err != nil {
			return
		}
		if c.Type == "" || (needIPAM && c.IPAM.Type == "") || c.MTU < 68 || c.MTU > 65535 || c.Nodename == "" {
			t.Fatalf("LoadConf(%q) accepted %+v", data, c)
		}
		if ds := c.Datastore(); ds.Type != "kubernetes" && ds.Type != "etcdv3" {
			t.Fatalf("LoadConf(%q) accepted datastore %q", data, ds.Type)
		}
	})
}
