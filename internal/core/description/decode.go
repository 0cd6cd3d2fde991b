package description

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/internal/core/report"
)

// decoder walks the YAML node tree by hand rather than unmarshalling into structs, so that every value keeps its
// line and column and every problem is reported, not only the first one the YAML library would stop at.
type decoder struct {
	r   report.Report
	pos map[string]report.Pos
	// broke holds every path at or above an error, so broken is a lookup rather than a scan of the report.
	broke map[string]bool
	opts  Options
}

// broken reports whether any error was recorded at p or below it, so later checks can skip values that failed
// to parse instead of piling consequential errors on top.
func (d *decoder) broken(p report.Path) bool { return d.broke[p.String()] }

// field is one key a mapping may hold and what to do with its value.
type field struct {
	key    string
	decode func(n *yaml.Node, p report.Path)
}

func posOf(n *yaml.Node) report.Pos { return report.Pos{Line: n.Line, Column: n.Column} }

func (d *decoder) errorf(n *yaml.Node, p report.Path, format string, args ...any) {
	d.errorAt(p, posOf(n), format, args...)
}

func (d *decoder) errorAt(p report.Path, pos report.Pos, format string, args ...any) {
	d.r.Add(report.Error, p, pos, format, args...)
	for i := len(p); i >= 0; i-- {
		d.broke[p[:i].String()] = true
	}
}

// resolve follows YAML aliases (*anchor) to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// mapping decodes n as a mapping whose keys must be among fields; it reports unknown keys and records the
// position of every value. It returns false when n is not a mapping at all.
func (d *decoder) mapping(n *yaml.Node, p report.Path, fields []field) bool {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, p, "must be a mapping of keys to values, not %s", describe(n))
		return false
	}
	known := make(map[string]field, len(fields))
	for _, f := range fields {
		known[f.key] = f
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, p, "has %s as a key; keys are plain words such as name or addresses", describe(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			// YAML forbids it, and the library would keep the last value without a word.
			d.errorf(k, p.Key(k.Value), "appears twice in this mapping (first at line %d); keep one", first.Line)
			continue
		}
		seen[k.Value] = k
		f, ok := known[k.Value]
		if !ok {
			d.errorf(k, p.Key(k.Value), "unknown key %s%s; the keys allowed here are %s", report.Quote(k.Value), didYouMean(k.Value, keysOf(fields)), keyList(fields))
			continue
		}
		d.pos[p.Key(k.Value).String()] = posOf(v)
		f.decode(v, p.Key(k.Value))
	}
	return true
}

func keysOf(fields []field) []string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return keys
}

func keyList(fields []field) string {
	keys := keysOf(fields)
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// didYouMean is " (did you mean X?)" for the candidate nearest a mistyped word, or "" when none is near.
func didYouMean(word string, candidates []string) string {
	if near := report.Nearest(word, candidates); near != "" {
		return " (did you mean " + near + "?)"
	}
	return ""
}

// describe names a node's kind for messages about wrong types.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "an empty value"
		}
		return report.Quote(n.Value)
	}
	return "this"
}

// sequence decodes n as a list, calling each for every element with its path.
func (d *decoder) sequence(n *yaml.Node, p report.Path, each func(n *yaml.Node, p report.Path)) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, p, "must be a list (for example [a, b] or lines starting with \"- \"), not %s", describe(n))
		return
	}
	for i, e := range n.Content {
		e = resolve(e)
		d.pos[p.Key(i).String()] = posOf(e)
		each(e, p.Key(i))
	}
}

// scalar returns n's text if it is a non-empty scalar.
func (d *decoder) scalar(n *yaml.Node, p report.Path, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Value == "" {
		d.errorf(n, p, "must be %s, not %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

// uint32Value decodes an integer in [lo, hi].
func (d *decoder) uint32Value(n *yaml.Node, p report.Path, lo, hi uint32) (uint32, bool) {
	if _, quoted := quotedNumber(n); quoted {
		d.errorf(n, p, "%s is in quotes, so YAML reads it as text, not a number: write %s: %s, without quotes", report.Quote(n.Value), p[len(p)-1], n.Value)
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, p, "must be a whole number from %d to %d, not %s", lo, hi, describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < int64(lo) || v > int64(hi) {
		why := ""
		if hi == MaxPriority && err == nil && v > int64(hi) {
			why = ": the kernel's \"from all lookup main\" rule sits at 32766, and a rule after it never sees a reply main can route"
		}
		shown := n.Value // an integer's digits; quoted and shortened only when long
		if len(shown) > 20 {
			shown = report.Quote(shown)
		}
		d.errorf(n, p, "must be a whole number from %d to %d, not %s%s", lo, hi, shown, why)
		return 0, false
	}
	return uint32(v), true
}

// quotedNumber returns the whole number a quoted scalar holds ("1"), when it holds one: the value of a key that
// takes a number, written as text by mistake.
func quotedNumber(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	return v, err == nil
}

// TrueWords and FalseWords are the spellings YAML 1.1 reads as true and false. symroute's YAML reader follows
// YAML 1.2, where only true and false are booleans and yes, on, off... are text; people write them, and the
// tools that read YAML 1.1 (schema validators among them) turn them into booleans, so symroute accepts them too.
var (
	TrueWords  = []string{"true", "True", "TRUE", "yes", "Yes", "YES", "y", "Y", "on", "On", "ON"}
	FalseWords = []string{"false", "False", "FALSE", "no", "No", "NO", "n", "N", "off", "Off", "OFF"}
)

func (d *decoder) boolValue(n *yaml.Node, p report.Path) (bool, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!bool" || n.Tag == "!!str") {
		switch {
		case slices.Contains(TrueWords, n.Value):
			return true, true
		case slices.Contains(FalseWords, n.Value):
			return false, true
		}
	}
	d.errorf(n, p, "must be true or false, not %s", describe(n))
	return false, false
}

// maxUint32 is the largest table id and rule priority the kernel accepts.
const maxUint32 = math.MaxUint32
