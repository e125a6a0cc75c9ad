package datastore

import (
	"encoding/json"
	"os"
	"testing"
)

// seedDocuments adds every document of testdata/seed.yaml to f.
func seedDocuments(f *testing.F, add func(doc []byte)) {
	data, err := os.ReadFile("testdata/seed.yaml")
	if err != nil {
		f.Fatal(err)
	}
	add(data)
	for _, doc := range docSeparator.Split(string(data), -1) {
		add([]byte(doc))
	}
}

// FuzzDecode: the calicoctl-style decoder (YAML or JSON, documents,
// lists) never panics, and every object it accepts survives a round trip
// through its stored JSON, still valid.
func FuzzDecode(f *testing.F) {
	seedDocuments(f, func(doc []byte) { f.Add(doc) })
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, err := Decode(data)
		if err != nil {
			return
		}
		for _, o := range objs {
			roundTrip(t, o)
		}
	})
}

// FuzzUnmarshal: each kind's strict JSON decoder and its validation never
// panic, whatever the bytes.
func FuzzUnmarshal(f *testing.F) {
	seedDocuments(f, func(doc []byte) {
		objs, err := Decode(doc)
		if err != nil || len(objs) != 1 {
			return
		}
		js, _ := json.Marshal(objs[0])
		for i, k := range Kinds {
			if k == objs[0].Kind() {
				f.Add(uint8(i), js)
			}
		}
	})
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		obj, err := Unmarshal(Kinds[int(kind)%len(Kinds)], data)
		if err != nil {
			return
		}
		if obj.Validate() == nil {
			roundTrip(t, obj)
		}
	})
}

// roundTrip checks that a valid object, stored as JSON, reads back valid.
func roundTrip(t *testing.T, o Object) {
	t.Helper()
	js, err := json.Marshal(o)
	if err != nil {
		t.Fatalf("%s %q: marshal: %v", o.Kind(), o.GetName(), err)
	}
	back, err := Unmarshal(o.Kind(), js)
	if err != nil {
		t.Fatalf("%s %q: stored as %s, does not read back: %v", o.Kind(), o.GetName(), js, err)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("%s %q: stored as %s, reads back invalid: %v", o.Kind(), o.GetName(), js, err)
	}
}
