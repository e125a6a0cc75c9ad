// Package backends opens the datastore a node or a command is pointed at,
// from calico-node's settings (DATASTORE_TYPE, ETCD_ENDPOINTS, KUBECONFIG).
package backends

import (
	"fmt"
	"os"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/etcd"
	"github.com/petrel-net/petrel/datastore/kubernetes"
)

// Settings select a backend.
type Settings struct {
	Type          string // "etcdv3" or "kubernetes"; empty: guessed from the others
	EtcdEndpoints string
	Kubeconfig    string
}

// FromEnv reads calico-node's environment variables.
func FromEnv() Settings {
	return Settings{Type: os.Getenv("DATASTORE_TYPE"), EtcdEndpoints: os.Getenv("ETCD_ENDPOINTS"), Kubeconfig: os.Getenv("KUBECONFIG")}
}

// Open connects to the selected backend.
func Open(s Settings) (datastore.Backend, string, error) {
	typ := s.Type
	if typ == "" {
		switch {
		case s.EtcdEndpoints != "":
			typ = "etcdv3"
		case s.Kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "":
			typ = "kubernetes"
		default:
			return nil, "", fmt.Errorf("no datastore: set DATASTORE_TYPE (etcdv3 with ETCD_ENDPOINTS, or kubernetes with KUBECONFIG)")
		}
	}
	switch typ {
	case "etcdv3":
		if s.EtcdEndpoints == "" {
			return nil, "", fmt.Errorf("DATASTORE_TYPE=etcdv3 needs ETCD_ENDPOINTS (like http://127.0.0.1:2379)")
		}
		b, err := etcd.New(s.EtcdEndpoints)
		return b, typ, err
	case "kubernetes":
		b, err := kubernetes.New(s.Kubeconfig)
		return b, typ, err
	}
	return nil, "", fmt.Errorf("DATASTORE_TYPE=%q: must be etcdv3 or kubernetes", typ)
}
