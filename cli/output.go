package cli

import (
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// ExitError ends the command with Code; Err, when set, is printed first.
// explain uses it so scripts can tell outcomes apart.
type ExitError struct {
	Code int
	Err  error
}

func (e ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e ExitError) Unwrap() error { return e.Err }

// checkFormat accepts table, json and yaml.
func checkFormat(output string) error {
	if output != "table" && output != "json" && output != "yaml" {
		return fmt.Errorf("--output %q: must be table, json or yaml", output)
	}
	return nil
}

// writeMessage prints a protobuf message as JSON (field names as in the
// .proto's JSON mapping) or YAML.
func writeMessage(w io.Writer, m proto.Message, output string) error {
	js, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	if output == "yaml" {
		if js, err = yaml.JSONToYAML(js); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintln(w, string(js))
	return err
}
