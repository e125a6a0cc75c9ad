// Package selector implements Calico's label selector language, as used by
// IPPool.spec.nodeSelector and BGPPeer.spec.nodeSelector / peerSelector.
//
// Grammar (whitespace is free between tokens; keywords are case sensitive):
//
//	expr    := and ( "||" and )*
//	and     := unary ( "&&" unary )*
//	unary   := "!" unary | primary
//	primary := "(" expr ")" | "all()" | "has(" key ")"
//	         | key "==" value | key "!=" value
//	         | key "in" set | key "not" "in" set
//	         | key "contains" value | key "starts" "with" value | key "ends" "with" value
//	set     := "{" [ value ( "," value )* ] "}"
//	value   := '...' | "..."   (no escapes; the other quote may appear inside)
//	key     := [A-Za-z0-9_./-]+   (e.g. kubernetes.io/hostname)
//
// Semantics follow Calico: "==", "in", "contains", "starts with" and "ends
// with" need the label to exist; "!=" and "not in" are true when the label
// is missing. "&&" binds tighter than "||".
//
// The empty (or all-whitespace) selector parses to a selector that matches
// every label set, like all(). Calico gives the empty string different
// meanings in different fields (an IPPool's empty nodeSelector means all(),
// a BGPPeer's empty peerSelector means "not set"): callers that need "not
// set" must check for the empty string before calling Parse.
//
// The package owns parsing and matching only; it holds no state.
package selector

import (
	"fmt"
	"slices"
	"strings"
)

// Selector is a parsed label selector.
type Selector interface {
	// Matches reports whether a set of labels (nil = no labels) is selected.
	Matches(labels map[string]string) bool
	// String is the canonical form; Parse(s.String()) is an equivalent
	// selector.
	String() string
}

// SyntaxError is the error Parse returns: it says where (a 0-based byte
// offset into the selector) and what went wrong.
type SyntaxError struct {
	Selector string
	Pos      int
	Msg      string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("selector %q: %s at position %d", e.Selector, e.Msg, e.Pos)
}

// Parse parses a selector. The empty string matches everything.
func Parse(s string) (Selector, error) {
	p := &parser{src: s}
	p.skipSpace()
	if p.pos == len(p.src) {
		return &sel{root: allNode{}}, nil
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.errorf("unexpected %s after a complete expression", p.found())
	}
	return &sel{root: root}, nil
}

// MustParse is Parse for selectors known to be valid (tests, constants);
// it panics on error.
func MustParse(s string) Selector {
	sl, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sl
}

type sel struct{ root node }

func (s *sel) Matches(labels map[string]string) bool { return s.root.eval(labels) }

func (s *sel) String() string {
	var b strings.Builder
	s.root.write(&b)
	return b.String()
}

// Expression tree.

type node interface {
	eval(labels map[string]string) bool
	write(b *strings.Builder)
}

type allNode struct{}

func (allNode) eval(map[string]string) bool { return true }
func (allNode) write(b *strings.Builder)    { b.WriteString("all()") }

type hasNode struct{ key string }

func (n hasNode) eval(l map[string]string) bool { _, ok := l[n.key]; return ok }
func (n hasNode) write(b *strings.Builder)      { b.WriteString("has(" + n.key + ")") }

type notNode struct{ x node }

func (n notNode) eval(l map[string]string) bool { return !n.x.eval(l) }
func (n notNode) write(b *strings.Builder) {
	b.WriteByte('!')
	switch n.x.(type) {
	case hasNode, allNode, notNode:
		n.x.write(b)
	default:
		b.WriteByte('(')
		n.x.write(b)
		b.WriteByte(')')
	}
}

type andNode struct{ xs []node }

func (n andNode) eval(l map[string]string) bool {
	for _, x := range n.xs {
		if !x.eval(l) {
			return false
		}
	}
	return true
}

func (n andNode) write(b *strings.Builder) {
	for i, x := range n.xs {
		if i > 0 {
			b.WriteString(" && ")
		}
		if _, isOr := x.(orNode); isOr {
			b.WriteByte('(')
			x.write(b)
			b.WriteByte(')')
			continue
		}
		x.write(b)
	}
}

type orNode struct{ xs []node }

func (n orNode) eval(l map[string]string) bool {
	for _, x := range n.xs {
		if x.eval(l) {
			return true
		}
	}
	return false
}

func (n orNode) write(b *strings.Builder) {
	for i, x := range n.xs {
		if i > 0 {
			b.WriteString(" || ")
		}
		x.write(b)
	}
}

type cmpOp int

const (
	opEq cmpOp = iota
	opNe
	opContains
	opStartsWith
	opEndsWith
)

var opText = map[cmpOp]string{opEq: "==", opNe: "!=", opContains: "contains", opStartsWith: "starts with", opEndsWith: "ends with"}

type cmpNode struct {
	key   string
	op    cmpOp
	value string
}

func (n cmpNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	switch n.op {
	case opEq:
		return ok && v == n.value
	case opNe:
		return !ok || v != n.value
	case opContains:
		return ok && strings.Contains(v, n.value)
	case opStartsWith:
		return ok && strings.HasPrefix(v, n.value)
	case opEndsWith:
		return ok && strings.HasSuffix(v, n.value)
	}
	return false
}

func (n cmpNode) write(b *strings.Builder) {
	b.WriteString(n.key + " " + opText[n.op] + " " + quote(n.value))
}

type inNode struct {
	key    string
	values []string // sorted, unique
	not    bool
}

func (n inNode) eval(l map[string]string) bool {
	v, ok := l[n.key]
	_, found := slices.BinarySearch(n.values, v)
	if n.not {
		return !ok || !found
	}
	return ok && found
}

func (n inNode) write(b *strings.Builder) {
	b.WriteString(n.key)
	if n.not {
		b.WriteString(" not")
	}
	b.WriteString(" in {")
	for i, v := range n.values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(v))
	}
	b.WriteByte('}')
}

// quote uses double quotes unless the value contains one (there are no
// escapes in the language, and a value never holds both kinds).
func quote(v string) string {
	if strings.Contains(v, `"`) {
		return "'" + v + "'"
	}
	return `"` + v + `"`
}

// Parser.

type parser struct {
	src string
	pos int
}

func (p *parser) errorf(format string, args ...any) error {
	return &SyntaxError{Selector: p.src, Pos: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) errAt(pos int, format string, args ...any) error {
	return &SyntaxError{Selector: p.src, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// found describes what is at the current position, for error messages.
func (p *parser) found() string {
	if p.pos >= len(p.src) {
		return "end of input"
	}
	rest := p.src[p.pos:]
	end := strings.IndexAny(rest, " \t\r\n")
	if end < 0 {
		end = len(rest)
	}
	if end > 20 {
		end = 20
	}
	return fmt.Sprintf("%q", rest[:end])
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\r', '\n':
			p.pos++
		default:
			return
		}
	}
}

// accept consumes tok (after spaces) if it is next.
func (p *parser) accept(tok string) bool {
	p.skipSpace()
	if strings.HasPrefix(p.src[p.pos:], tok) {
		p.pos += len(tok)
		return true
	}
	return false
}

func isKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '/' || c == '-'
}

// word reads a key or keyword at the current position ("" if none).
func (p *parser) word() string {
	p.skipSpace()
	start := p.pos
	for p.pos < len(p.src) && isKeyChar(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) parseOr() (node, error) {
	x, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	xs := []node{x}
	for p.accept("||") {
		y, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		xs = append(xs, y)
	}
	if len(xs) == 1 {
		return x, nil
	}
	return orNode{xs: xs}, nil
}

func (p *parser) parseAnd() (node, error) {
	x, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	xs := []node{x}
	for p.accept("&&") {
		y, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		xs = append(xs, y)
	}
	if len(xs) == 1 {
		return x, nil
	}
	return andNode{xs: xs}, nil
}

func (p *parser) parseUnary() (node, error) {
	p.skipSpace()
	// "!" but not the start of "!=" (which cannot begin an expression anyway).
	if p.pos < len(p.src) && p.src[p.pos] == '!' && !strings.HasPrefix(p.src[p.pos:], "!=") {
		p.pos++
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return notNode{x: x}, nil
	}
	return p.parsePrimary()
}

func (p *parser) parsePrimary() (node, error) {
	p.skipSpace()
	if p.accept("(") {
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if !p.accept(")") {
			return nil, p.errorf("expected ')', found %s", p.found())
		}
		return x, nil
	}
	key := p.word()
	if key == "" {
		return nil, p.errorf("expected a label name, has(), all(), '!' or '(', found %s", p.found())
	}
	// Function calls: all(), has(key). A label may itself be called "has"
	// or "all"; it is a function only when "(" follows.
	afterKey := p.pos
	if (key == "all" || key == "has") && p.accept("(") {
		if key == "all" {
			if !p.accept(")") {
				return nil, p.errorf("expected ')' after all(, found %s", p.found())
			}
			return allNode{}, nil
		}
		k := p.word()
		if k == "" {
			return nil, p.errorf("expected a label name in has(), found %s", p.found())
		}
		if !p.accept(")") {
			return nil, p.errorf("expected ')' after has(%s, found %s", k, p.found())
		}
		return hasNode{key: k}, nil
	}
	p.pos = afterKey
	return p.parseComparison(key)
}

func (p *parser) parseComparison(key string) (node, error) {
	switch {
	case p.accept("=="):
		v, err := p.value()
		return cmpNode{key: key, op: opEq, value: v}, err
	case p.accept("!="):
		v, err := p.value()
		return cmpNode{key: key, op: opNe, value: v}, err
	}
	p.skipSpace()
	opPos := p.pos
	switch w := p.word(); w {
	case "in":
		vs, err := p.set()
		return inNode{key: key, values: vs}, err
	case "not":
		if p.word() != "in" {
			return nil, p.errAt(opPos, "expected \"not in\"")
		}
		vs, err := p.set()
		return inNode{key: key, values: vs, not: true}, err
	case "contains":
		v, err := p.value()
		return cmpNode{key: key, op: opContains, value: v}, err
	case "starts", "ends":
		if p.word() != "with" {
			return nil, p.errAt(opPos, "expected %q", w+" with")
		}
		v, err := p.value()
		op := opStartsWith
		if w == "ends" {
			op = opEndsWith
		}
		return cmpNode{key: key, op: op, value: v}, err
	}
	p.pos = opPos
	return nil, p.errorf("expected an operator (==, !=, in, not in, contains, starts with, ends with) after %q, found %s", key, p.found())
}

// value reads a quoted string.
func (p *parser) value() (string, error) {
	p.skipSpace()
	if p.pos >= len(p.src) || (p.src[p.pos] != '\'' && p.src[p.pos] != '"') {
		if p.pos >= len(p.src) {
			return "", p.errorf("expected a quoted value")
		}
		return "", p.errorf("expected a quoted value, found %s", p.found())
	}
	q := p.src[p.pos]
	end := strings.IndexByte(p.src[p.pos+1:], q)
	if end < 0 {
		return "", p.errorf("unterminated string")
	}
	v := p.src[p.pos+1 : p.pos+1+end]
	p.pos += end + 2
	return v, nil
}

// set reads {'a', "b"}; the result is sorted and without duplicates.
func (p *parser) set() ([]string, error) {
	if !p.accept("{") {
		return nil, p.errorf("expected '{' to start a set of values, found %s", p.found())
	}
	var vs []string
	if !p.accept("}") {
		for {
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			vs = append(vs, v)
			if p.accept("}") {
				break
			}
			if !p.accept(",") {
				return nil, p.errorf("expected ',' or '}' in a set of values, found %s", p.found())
			}
		}
	}
	slices.Sort(vs)
	return slices.Compact(vs), nil
}
