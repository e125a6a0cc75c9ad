// Package datastore holds Calico's resources (crd.projectcalico.org/v1)
// as Go types, validates them, and defines the Backend every store
// implements: kubernetes (client-go), etcdv3 (clientv3) and memory.
//
// It owns the resource shapes and the store contract; it never acts on a
// resource. Field names and JSON are Calico's, so a cluster's objects load
// unchanged.
package datastore

import (
	"context"
	"errors"
)

// Sentinel errors; backends wrap them so that errors.Is works.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("resourceVersion conflict") // CAS failed: re-read and retry
	ErrExists   = errors.New("already exists")
)

// EventType says what happened to an object.
type EventType int

const (
	Added EventType = iota
	Modified
	Deleted
)

func (e EventType) String() string { return [...]string{"ADDED", "MODIFIED", "DELETED"}[e] }

// Event is one change; for Deleted, Object is the last known state.
type Event struct {
	Type   EventType
	Object Object
	// Err is set when the changed object cannot be decoded (Added or
	// Modified); Object then carries only its kind and name.
	Err *DecodeError
}

// Backend is a store of resources with compare-and-swap updates.
type Backend interface {
	Get(ctx context.Context, kind Kind, name string) (Object, error)
	// List returns every object of a kind and the store revision they were
	// read at, to Watch from. Objects that cannot be decoded are left out
	// and named in a *SkippedError; the other results are then still valid
	// (see SkippedObjects).
	List(ctx context.Context, kind Kind) (objs []Object, revision string, err error)
	// Create fails with ErrExists when the name is taken.
	Create(ctx context.Context, obj Object) (Object, error)
	// Update succeeds only if obj's resourceVersion is the stored one
	// (ErrConflict otherwise) and returns the object with its new version.
	Update(ctx context.Context, obj Object) (Object, error)
	// Delete removes an object; a non-empty resourceVersion must match.
	Delete(ctx context.Context, kind Kind, name, resourceVersion string) error
	// Watch sends the changes after revision. The channel closes when the
	// watch ends for any reason (ctx, compaction, outage): the caller then
	// lists again and watches from the new revision.
	Watch(ctx context.Context, kind Kind, revision string) (<-chan Event, error)
	Close() error
}
