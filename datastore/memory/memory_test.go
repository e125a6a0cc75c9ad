package memory

import (
	"testing"

	"github.com/petrel-net/petrel/datastore"
	"github.com/petrel-net/petrel/datastore/datastoretest"
)

func TestContract(t *testing.T) {
	datastoretest.Run(t, func(*testing.T) datastore.Backend { return New() })
}
