package config

import "testing"

// FuzzParse: the standalone config decoder never panics, and what it
// accepts has a router ID and a TCP port to listen on.
func FuzzParse(f *testing.F) {
	for _, s := range []string{full, "", "routerID: 10.0.0.1\n", "peers: [{address: 10.0.0.2}]\n",
		"kernel: {scanTime: 1s, interfaces: ['-cali*']}\n", "listen: {port: 70000}\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if !c.RouterID.IsValid() || c.ListenPort < 1 || c.ListenPort > 65535 {
			t.Fatalf("Parse(%q) accepted router ID %v, listen port %d", data, c.RouterID, c.ListenPort)
		}
	})
}
