package spec

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/symroute/symroute/internal/report"
)

// decoder walks the YAML node tree by hand rather than unmarshalling into structs, so that every value keeps its
// line and column and every problem is reported, not only the first one yaml.v3 would stop at.
type decoder struct {
	r   report.Report
	pos map[string]report.Pos
}

// broken reports whether any error was recorded at p or below it, so later checks can skip values that failed
// to parse instead of piling consequential errors on top.
func (d *decoder) broken(p report.Path) bool {
	prefix := p.String()
	for _, e := range d.r.Entries {
		s := e.Path.String()
		if e.Severity == report.Error && (s == prefix || strings.HasPrefix(s, prefix+".") || strings.HasPrefix(s, prefix+"[")) {
			return true
		}
	}
	return false
}

// field is one key a mapping may hold and what to do with its value.
type field struct {
	key    string
	decode func(n *yaml.Node, p report.Path)
}

func posOf(n *yaml.Node) report.Pos { return report.Pos{Line: n.Line, Column: n.Column} }

func (d *decoder) errorf(n *yaml.Node, p report.Path, format string, args ...any) {
	d.r.Add(report.Error, p, posOf(n), format, args...)
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
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		f, ok := known[k.Value]
		if !ok {
			if near := nearest(k.Value, fields); near != "" {
				d.errorf(k, p.Key(k.Value), "unknown key %q; did you mean %q? (allowed here: %s)", k.Value, near, keyList(fields))
			} else {
				d.errorf(k, p.Key(k.Value), "unknown key %q; the keys allowed here are %s", k.Value, keyList(fields))
			}
			continue
		}
		d.pos[p.Key(k.Value).String()] = posOf(v)
		f.decode(v, p.Key(k.Value))
	}
	return true
}

func keyList(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// nearest returns the allowed key closest to a mistyped one, if it is within two edits.
func nearest(key string, fields []field) string {
	best, bestDist := "", 3
	for _, f := range fields {
		if d := editDistance(key, f.key); d < bestDist {
			best, bestDist = f.key, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
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
		return fmt.Sprintf("%q", n.Value)
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
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		d.errorf(n, p, "must be a whole number from %d to %d, not %s", lo, hi, describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < int64(lo) || v > int64(hi) {
		d.errorf(n, p, "must be a whole number from %d to %d, not %s", lo, hi, n.Value)
		return 0, false
	}
	return uint32(v), true
}

func (d *decoder) boolValue(n *yaml.Node, p report.Path) (bool, bool) {
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		d.errorf(n, p, "must be true or false, not %s", describe(n))
		return false, false
	}
	return b, true
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// syntaxError turns a yaml.v3 parse error into a report entry with the line it names.
func syntaxError(err error) report.Report {
	var r report.Report
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	pos := report.Pos{}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pos.Line, _ = strconv.Atoi(m[1])
		pos.Column = 1
		msg = strings.TrimSpace(strings.Replace(msg, m[0]+":", "", 1))
	}
	r.Add(report.Error, nil, pos, "the file is not valid YAML: %s; fix the syntax first", msg)
	return r
}

// maxUint32 is the largest table id and rule priority the kernel accepts.
const maxUint32 = math.MaxUint32
