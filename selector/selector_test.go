package selector

import (
	"errors"
	"strings"
	"testing"
)

func TestMatches(t *testing.T) {
	labels := map[string]string{
		"rack":                   "r1",
		"zone":                   "us-east-1a",
		"route-reflector":        "true",
		"kubernetes.io/hostname": "node-1",
		"empty":                  "",
		"has":                    "x",
	}
	tests := []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"   ", true},
		{"all()", true},
		{"all( )", true},
		{"has(rack)", true},
		{"has( rack )", true},
		{"has(nope)", false},
		{"!has(nope)", true},
		{"!has(rack)", false},
		{"has(empty)", true},
		{"rack == 'r1'", true},
		{`rack == "r1"`, true},
		{"rack=='r1'", true},
		{"rack == 'r2'", false},
		{"nope == ''", false},
		{"empty == ''", true},
		{"rack != 'r2'", true},
		{"rack != 'r1'", false},
		{"nope != 'r1'", true}, // missing label: != is true
		{"rack in {'r1','r2'}", true},
		{"rack in { 'r2' , \"r1\" }", true},
		{"rack in {'r2'}", false},
		{"rack in {}", false},
		{"nope in {'r1'}", false},
		{"rack not in {'r2'}", true},
		{"rack not in {'r1'}", false},
		{"nope not in {'r1'}", true},
		{"zone contains 'east'", true},
		{"zone contains 'west'", false},
		{"nope contains ''", false},
		{"zone starts with 'us-'", true},
		{"zone starts with 'eu-'", false},
		{"zone ends with '1a'", true},
		{"zone ends with '1b'", false},
		{"kubernetes.io/hostname == 'node-1'", true},
		{"rack == 'r1' && zone == 'us-east-1a'", true},
		{"rack == 'r1' && zone == 'x'", false},
		{"rack == 'x' || zone == 'us-east-1a'", true},
		{"rack == 'x' || zone == 'y'", false},
		{"rack == 'x' && zone == 'y' || has(rack)", true},    // && binds tighter
		{"rack == 'x' && (zone == 'y' || has(rack))", false}, // parentheses
		{"has(rack) || rack == 'x' && zone == 'y'", true},
		{"!(rack == 'r1')", false},
		{"!rack == 'r1'", false}, // ! applies to the comparison
		{"!!has(rack)", true},
		{"((has(rack)))", true},
		{"has == 'x'", true}, // a label named "has"
		{"has(has)", true},
		{`rack == 'it"s'`, false},
		{"route-reflector == 'true'", true},
	}
	for _, tt := range tests {
		s, err := Parse(tt.sel)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sel, err)
			continue
		}
		if got := s.Matches(labels); got != tt.want {
			t.Errorf("Parse(%q).Matches = %v, want %v (canonical %s)", tt.sel, got, tt.want, s)
		}
		// The canonical form parses to an equivalent selector.
		s2, err := Parse(s.String())
		if err != nil {
			t.Errorf("Parse(%q) canonical %q does not parse: %v", tt.sel, s.String(), err)
			continue
		}
		if s2.String() != s.String() || s2.Matches(labels) != tt.want {
			t.Errorf("canonical form of %q is not stable: %q -> %q", tt.sel, s, s2)
		}
	}
}

func TestNilLabels(t *testing.T) {
	for sel, want := range map[string]bool{"": true, "has(a)": false, "a != 'x'": true, "a not in {'x'}": true, "a == ''": false} {
		if got := MustParse(sel).Matches(nil); got != want {
			t.Errorf("%q.Matches(nil) = %v, want %v", sel, got, want)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "all()"},
		{"rack=='r1'", `rack == "r1"`},
		{`v == 'a"b'`, `v == 'a"b'`},
		{"k in {'b','a','b'}", `k in {"a", "b"}`},
		{"k not in {}", `k not in {}`},
		{"(a == 'x' || b == 'y') && !has(c)", `(a == "x" || b == "y") && !has(c)`},
		{"a == 'x' || b == 'y' && c == 'z'", `a == "x" || b == "y" && c == "z"`},
		{"!(a == 'x' && b == 'y')", `!(a == "x" && b == "y")`},
		{"z starts with 'p' && z ends with 's' && z contains 'c'", `z starts with "p" && z ends with "s" && z contains "c"`},
	}
	for _, tt := range tests {
		if got := MustParse(tt.in).String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		sel  string
		pos  int
		want string // substring of the message
	}{
		{"rack == ", 8, "expected a quoted value"},
		{"rack == r1", 8, `expected a quoted value, found "r1"`},
		{"rack == 'r1", 8, "unterminated string"},
		{"rack", 4, "expected an operator"},
		{"rack = 'r1'", 5, "expected an operator"},
		{"rack === 'r1'", 7, "expected a quoted value"},
		{"rack in 'r1'", 8, "expected '{'"},
		{"rack in {'r1' 'r2'}", 14, "expected ',' or '}'"},
		{"rack in {'r1',}", 14, "expected a quoted value"},
		{"rack in {'r1'", 13, "expected ',' or '}'"},
		{"rack not {'r1'}", 5, `expected "not in"`},
		{"zone starts 'x'", 5, `expected "starts with"`},
		{"zone ends 'x'", 5, `expected "ends with"`},
		{"has(rack", 8, "expected ')'"},
		{"has()", 4, "expected a label name in has()"},
		{"all(", 4, "expected ')'"},
		{"(has(a)", 7, "expected ')'"},
		{"has(a))", 6, "unexpected"},
		{"has(a) has(b)", 7, "unexpected"},
		{"has(a) &&", 9, "expected a label name"},
		{"|| has(a)", 0, "expected a label name"},
		{"has(a) & has(b)", 7, "unexpected"},
		{"!", 1, "expected a label name"},
		{"== 'x'", 0, "expected a label name"},
		{"rack == 'a' ||", 14, "expected a label name"},
	}
	for _, tt := range tests {
		s, err := Parse(tt.sel)
		if err == nil {
			t.Errorf("Parse(%q) = %s, want an error", tt.sel, s)
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error %T is not a *SyntaxError", tt.sel, err)
			continue
		}
		if se.Pos != tt.pos || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "selector ") {
			t.Errorf("Parse(%q) error = %q (pos %d), want pos %d and %q", tt.sel, err, se.Pos, tt.pos, tt.want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse("rack == ")
	if want := `selector "rack == ": expected a quoted value at position 8`; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
