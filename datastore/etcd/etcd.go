// Package etcd is the etcdv3 datastore.Backend, on etcd's clientv3.
//
// Key layout (Calico's v3 layout, one key per object, JSON values):
//
//	/calico/resources/v3/projectcalico.org/<plural>/<name>
//
// e.g. /calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool.
// An object's resourceVersion is its key's ModRevision; updates and
// deletes are transactions conditioned on it (compare-and-swap), creates
// on the key not existing. Stored values omit resourceVersion.
package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/petrel-net/petrel/datastore"
)

const prefix = "/calico/resources/v3/projectcalico.org/"

// Key returns the etcd key of an object.
func Key(kind datastore.Kind, name string) string { return prefix + kind.Plural() + "/" + name }

func kindPrefix(kind datastore.Kind) string { return prefix + kind.Plural() + "/" }

// Backend talks to one etcd cluster.
type Backend struct {
	c *clientv3.Client
}

// New connects to etcd. Bad certificate files, a certificate etcd or we
// refuse, and (with auth) a wrong user or password fail here, with the
// setting at fault named; an unreachable etcd does not (the client
// retries, as it does through any outage).
func New(ctx context.Context, cfg Config) (*Backend, error) {
	cc, err := clientConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(cc)
	if err != nil {
		if cfg.Username != "" {
			return nil, fmt.Errorf("etcd %s as user %q (ETCD_USERNAME, ETCD_PASSWORD): %w", cfg.Endpoints, cfg.Username, err)
		}
		return nil, fmt.Errorf("etcd %s: %w", cfg.Endpoints, err)
	}
	return &Backend{c: c}, nil
}

func (b *Backend) Close() error { return b.c.Close() }

// nameOf is the object name in a key of kind.
func nameOf(kind datastore.Kind, key []byte) string {
	return strings.TrimPrefix(string(key), kindPrefix(kind))
}

// decode reads the stored value of kind/name; a value that is not the
// kind's JSON is a *datastore.DecodeError.
func decode(kind datastore.Kind, name string, value []byte, rev int64) (datastore.Object, error) {
	obj, err := datastore.New(kind)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(value, obj); err != nil {
		return nil, datastore.NewDecodeError(kind, name, "", fmt.Errorf("etcd key %s: %w", Key(kind, name), err))
	}
	obj.SetResourceVersion(strconv.FormatInt(rev, 10))
	return obj, nil
}

func encode(obj datastore.Object) (string, error) {
	c := datastore.Clone(obj)
	c.SetResourceVersion("")
	js, err := json.Marshal(c)
	return string(js), err
}

func (b *Backend) Get(ctx context.Context, kind datastore.Kind, name string) (datastore.Object, error) {
	resp, err := b.c.Get(ctx, Key(kind, name))
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s %q: %w", kind, name, datastore.ErrNotFound)
	}
	return decode(kind, name, resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
}

func (b *Backend) List(ctx context.Context, kind datastore.Kind) ([]datastore.Object, string, error) {
	resp, err := b.c.Get(ctx, kindPrefix(kind), clientv3.WithPrefix())
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", kind, err)
	}
	return datastore.DecodeList(len(resp.Kvs), strconv.FormatInt(resp.Header.Revision, 10), func(i int) (datastore.Object, error) {
		kv := resp.Kvs[i]
		return decode(kind, nameOf(kind, kv.Key), kv.Value, kv.ModRevision)
	})
}

func (b *Backend) Create(ctx context.Context, obj datastore.Object) (datastore.Object, error) {
	key := Key(obj.Kind(), obj.GetName())
	val, err := encode(obj)
	if err != nil {
		return nil, err
	}
	resp, err := b.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, val)).Commit()
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", obj.Kind(), obj.GetName(), err)
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%s %q: %w", obj.Kind(), obj.GetName(), datastore.ErrExists)
	}
	return decode(obj.Kind(), obj.GetName(), []byte(val), resp.Header.Revision)
}

func (b *Backend) Update(ctx context.Context, obj datastore.Object) (datastore.Object, error) {
	key := Key(obj.Kind(), obj.GetName())
	rev, err := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%s %q: resourceVersion %q: %w", obj.Kind(), obj.GetName(), obj.GetResourceVersion(), datastore.ErrConflict)
	}
	val, err := encode(obj)
	if err != nil {
		return nil, err
	}
	resp, err := b.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, val)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", obj.Kind(), obj.GetName(), err)
	}
	if !resp.Succeeded {
		if len(resp.Responses) > 0 && len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return nil, fmt.Errorf("%s %q: %w", obj.Kind(), obj.GetName(), datastore.ErrNotFound)
		}
		return nil, fmt.Errorf("%s %q at %d: %w", obj.Kind(), obj.GetName(), rev, datastore.ErrConflict)
	}
	return decode(obj.Kind(), obj.GetName(), []byte(val), resp.Header.Revision)
}

func (b *Backend) Delete(ctx context.Context, kind datastore.Kind, name, rv string) error {
	key := Key(kind, name)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), ">", 0)
	if rv != "" {
		rev, err := strconv.ParseInt(rv, 10, 64)
		if err != nil {
			return fmt.Errorf("%s %q: resourceVersion %q: %w", kind, name, rv, datastore.ErrConflict)
		}
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", rev)
	}
	resp, err := b.c.Txn(ctx).If(cmp).Then(clientv3.OpDelete(key)).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("%s %q: %w", kind, name, err)
	}
	if !resp.Succeeded {
		if len(resp.Responses) > 0 && len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return fmt.Errorf("%s %q: %w", kind, name, datastore.ErrNotFound)
		}
		return fmt.Errorf("%s %q at %s: %w", kind, name, rv, datastore.ErrConflict)
	}
	return nil
}

// Watch follows the kind's key prefix after revision. It closes the
// channel when etcd ends the watch (compaction, outage, ctx).
func (b *Backend) Watch(ctx context.Context, kind datastore.Kind, revision string) (<-chan datastore.Event, error) {
	rev, err := strconv.ParseInt(revision, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("watch %s: revision %q: %w", kind, revision, err)
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := b.c.Watch(ctx, kindPrefix(kind), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
	out := make(chan datastore.Event, 256)
	go func() {
		defer close(out)
		defer cancel()
		for resp := range wch {
			if resp.Err() != nil || resp.Canceled {
				return
			}
			for _, ev := range resp.Events {
				select {
				case out <- toEvent(kind, ev):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// toEvent converts an etcd event; a value that does not decode becomes an
// event with Err set (or, for a delete, with a placeholder object).
func toEvent(kind datastore.Kind, ev *clientv3.Event) datastore.Event {
	name, rev := nameOf(kind, ev.Kv.Key), ev.Kv.ModRevision
	typ, value := datastore.Modified, ev.Kv.Value
	switch {
	case ev.Type == clientv3.EventTypeDelete:
		typ, value = datastore.Deleted, nil
		if ev.PrevKv != nil {
			value = ev.PrevKv.Value
		}
	case ev.IsCreate():
		typ = datastore.Added
	}
	obj, err := decode(kind, name, value, rev)
	if err == nil {
		return datastore.Event{Type: typ, Object: obj}
	}
	var bad *datastore.DecodeError
	if !errors.As(err, &bad) { // decode fails only with a *DecodeError; be sure
		bad = datastore.NewDecodeError(kind, name, "", err)
	}
	e := datastore.UndecodableEvent(typ, bad)
	e.Object.SetResourceVersion(strconv.FormatInt(rev, 10))
	return e
}

var _ datastore.Backend = (*Backend)(nil)
