package datastore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// calicoctlAPIVersion is what calicoctl users write; it is accepted on
// input and stored as the CRD's version, as Calico's own stores do.
const calicoctlAPIVersion = "projectcalico.org/v3"

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// Decode reads one or more resources from YAML or JSON: several documents
// separated by "---", and `kind: List` with items, as kubectl prints them.
// Each object is validated; an error names the document and the object.
func Decode(data []byte) ([]Object, error) {
	var out []Object
	for i, doc := range docSeparator.Split(string(data), -1) {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: not valid YAML or JSON: %w", i+1, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // empty document
		}
		objs, err := decodeJSON(js)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

func decodeJSON(js []byte) ([]Object, error) {
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, err
	}
	if head.Kind == "List" {
		var out []Object
		for i, item := range head.Items {
			objs, err := decodeJSON(item)
			if err != nil {
				return nil, fmt.Errorf("items[%d]: %w", i, err)
			}
			out = append(out, objs...)
		}
		return out, nil
	}
	if head.APIVersion != APIVersion && head.APIVersion != calicoctlAPIVersion {
		return nil, fmt.Errorf("apiVersion %q: want %s (or %s)", head.APIVersion, APIVersion, calicoctlAPIVersion)
	}
	kind, err := ParseKind(head.Kind)
	if err != nil {
		return nil, fmt.Errorf("kind: %w", err)
	}
	obj, err := Unmarshal(kind, js)
	if err != nil {
		return nil, err
	}
	return []Object{obj}, obj.Validate()
}

// Unmarshal decodes one object of a known kind from JSON, rejecting
// unknown fields so that a typo is an error and not a silent default.
func Unmarshal(kind Kind, js []byte) (Object, error) {
	obj, err := New(kind)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	setTypeMeta(obj)
	return obj, nil
}

// setTypeMeta stamps apiVersion and kind, whatever the input said.
func setTypeMeta(obj Object) {
	obj.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Group: Group, Version: Version, Kind: string(obj.Kind())})
}

// Clone deep-copies an object through JSON.
func Clone(obj Object) Object {
	js, err := json.Marshal(obj)
	if err != nil {
		panic(fmt.Sprintf("datastore: marshal %s %q: %v", obj.Kind(), obj.GetName(), err))
	}
	out, err := New(obj.Kind())
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(js, out); err != nil {
		panic(fmt.Sprintf("datastore: unmarshal %s %q: %v", obj.Kind(), obj.GetName(), err))
	}
	return out
}
