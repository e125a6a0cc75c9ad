// Package backends opens the datastore a node or a command is pointed at,
// from calico-node's settings (DATASTORE_TYPE, ETCD_ENDPOINTS and the other
// ETCD_* settings, KUBECONFIG).
package backends

import (
	"context"
	"fmt"
	"os"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/etcd"
	"github.com/petrel-net/petrel/datastore/kubernetes"
)

// Settings select a backend.
type Settings struct {
	Type       string // "etcdv3" or "kubernetes"; empty: guessed from the others
	Etcd       etcd.Config
	Kubeconfig string
}

// FromEnv reads calico-node's environment variables.
func FromEnv() Settings {
	return Settings{
		Type: os.Getenv("DATASTORE_TYPE"),
		Etcd: etcd.Config{
			Endpoints:  os.Getenv("ETCD_ENDPOINTS"),
			CACertFile: os.Getenv("ETCD_CA_CERT_FILE"),
			CertFile:   os.Getenv("ETCD_CERT_FILE"),
			KeyFile:    os.Getenv("ETCD_KEY_FILE"),
			Username:   os.Getenv("ETCD_USERNAME"),
			Password:   os.Getenv("ETCD_PASSWORD"),
		},
		Kubeconfig: os.Getenv("KUBECONFIG"),
	}
}

// Open connects to the selected backend.
func Open(ctx context.Context, s Settings) (datastore.Backend, string, error) {
	typ := s.Type
	if typ == "" {
		switch {
		case s.Etcd.Endpoints != "":
			typ = "etcdv3"
		case s.Kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "":
			typ = "kubernetes"
		default:
			return nil, "", fmt.Errorf("no datastore: set DATASTORE_TYPE (etcdv3 with ETCD_ENDPOINTS, or kubernetes with KUBECONFIG)")
		}
	}
	switch typ {
	case "etcdv3":
		if s.Etcd.Endpoints == "" {
			return nil, "", fmt.Errorf("DATASTORE_TYPE=etcdv3 needs ETCD_ENDPOINTS (like https://127.0.0.1:2379)")
		}
		b, err := etcd.New(ctx, s.Etcd)
		return b, typ, err
	case "kubernetes":
		b, err := kubernetes.New(s.Kubeconfig)
		return b, typ, err
	}
	return nil, "", fmt.Errorf("DATASTORE_TYPE=%q: must be etcdv3 or kubernetes", typ)
}
