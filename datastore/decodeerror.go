package datastore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// DecodeError is one stored object that cannot be read as its kind: a
// corrupt etcd value, a Node annotation that is not a number. Backends
// leave such an object out of List and Watch and report it with this, so
// that one bad object never hides every other object of its kind.
type DecodeError struct {
	Kind Kind
	Name string
	// Field is the offending field (a JSON path, or a Node annotation),
	// empty when the stored value as a whole is unreadable.
	Field string
	Err   error
}

// NewDecodeError describes why the object kind/name does not decode. When
// field is empty it is taken from err if err is a JSON type error.
func NewDecodeError(kind Kind, name, field string, err error) *DecodeError {
	var typeErr *json.UnmarshalTypeError
	if field == "" && errors.As(err, &typeErr) {
		field = typeErr.Field
	}
	return &DecodeError{Kind: kind, Name: name, Field: field, Err: err}
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s %q cannot be decoded: %v", e.Kind, e.Name, e.Err)
	}
	return fmt.Sprintf("%s %q cannot be decoded: field %s: %v", e.Kind, e.Name, e.Field, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// SkippedError is List's error when it left undecodable objects out. The
// objects List returns with it are all the others, and its revision is
// valid to watch from: callers that can carry on without the bad objects
// (Follow does) use both, and report Objects.
type SkippedError struct {
	Objects []*DecodeError
}

func (e *SkippedError) Error() string {
	msgs := make([]string, len(e.Objects))
	for i, o := range e.Objects {
		msgs[i] = o.Error()
	}
	return fmt.Sprintf("%d object(s) skipped: %s", len(e.Objects), strings.Join(msgs, "; "))
}

// DecodeList is how a backend's List decodes the n items it read at
// revision: decode(i) decodes item i. Items that fail with a *DecodeError
// are left out and named in a *SkippedError; any other error fails the
// whole list.
func DecodeList(n int, revision string, decode func(i int) (Object, error)) ([]Object, string, error) {
	objs := make([]Object, 0, n)
	var skipped []*DecodeError
	for i := range n {
		obj, err := decode(i)
		var bad *DecodeError
		switch {
		case errors.As(err, &bad):
			skipped = append(skipped, bad)
		case err != nil:
			return nil, "", err
		default:
			objs = append(objs, obj)
		}
	}
	if len(skipped) > 0 {
		return objs, revision, &SkippedError{Objects: skipped}
	}
	return objs, revision, nil
}

// Placeholder is an empty object of kind called name: what an Event
// carries for an object that cannot be decoded.
func Placeholder(kind Kind, name string) Object {
	obj, err := New(kind)
	if err != nil {
		panic(fmt.Sprintf("datastore: placeholder for %q: %v", name, err)) // backends only watch known kinds
	}
	obj.SetName(name)
	return obj
}

// UndecodableEvent is the watch event for an object that cannot be
// decoded: a placeholder of its kind and name, with the error unless the
// object was deleted (a deleted bad object is simply gone).
func UndecodableEvent(typ EventType, bad *DecodeError) Event {
	e := Event{Type: typ, Object: Placeholder(bad.Kind, bad.Name)}
	if typ != Deleted {
		e.Err = bad
	}
	return e
}

// SkippedObjects reports the objects a List error left out; ok is false
// when err is nil or is any other error (then List's results are not to be
// used).
func SkippedObjects(err error) (objs []*DecodeError, ok bool) {
	var s *SkippedError
	if errors.As(err, &s) {
		return s.Objects, true
	}
	return nil, false
}
