package selector

import "testing"

// FuzzParse: Parse never panics, and a selector that parses has a
// canonical String that parses to the same canonical form and selects
// the same label sets.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "all()", "has(rack)", "!has(rack)", "rack == 'r1'", `zone != "a"`,
		"rack in {'r1', 'r2'}", "rack not in {}", "zone contains 'east'",
		"zone starts with 'us-'", "zone ends with '1a'", "(a == 'x' || b == 'y') && !has(c)",
		"kubernetes.io/hostname == 'node-1'", "a == 'it\"s'",
	} {
		f.Add(s)
	}
	labelSets := []map[string]string{nil, {"rack": "r1"}, {"zone": "us-east-1a", "a": "x", "c": ""}}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := Parse(s)
		if err != nil {
			return
		}
		canon := sel.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) = %q, which does not parse: %v", s, canon, err)
		}
		if again.String() != canon {
			t.Fatalf("Parse(%q): canonical form %q re-parses as %q", s, canon, again.String())
		}
		for _, l := range labelSets {
			if sel.Matches(l) != again.Matches(l) {
				t.Fatalf("Parse(%q) and Parse(%q) disagree on %v", s, canon, l)
			}
		}
	})
}
