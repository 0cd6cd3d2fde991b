package schemas

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/reservations"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

type schemaNode struct {
	Properties map[string]*schemaNode `json:"properties"`
	Items      *schemaNode            `json:"items"`
	Ref        string                 `json:"$ref"`
	Defs       map[string]*schemaNode `json:"$defs"`
	Enum       []any                  `json:"enum"`
	AnyOf      []*schemaNode          `json:"anyOf"`
	Pattern    string                 `json:"pattern"`
}

func load(t *testing.T) *schemaNode {
	t.Helper()
	var root schemaNode
	if err := json.Unmarshal(HostV1, &root); err != nil {
		t.Fatalf("the schema is not valid JSON: %v", err)
	}
	return &root
}

func (n *schemaNode) resolve(root *schemaNode) *schemaNode {
	if n.Ref != "" {
		return root.Defs[strings.TrimPrefix(n.Ref, "#/$defs/")]
	}
	return n
}

var allowed = regexp.MustCompile(`the keys allowed here are ([a-z0-9_, ]+)`)

// parserKeys asks the parser which keys it allows at a place, by planting an unknown key there and reading the
// list its error gives the user.
func parserKeys(t *testing.T, doc string) []string {
	t.Helper()
	_, rep := description.Parse([]byte(doc))
	for _, e := range rep.Entries {
		if m := allowed.FindStringSubmatch(e.Message); m != nil {
			return strings.Split(strings.TrimSuffix(m[1], ")"), ", ")
		}
	}
	t.Fatalf("no unknown-key error for %q: %+v", doc, rep.Entries)
	return nil
}

func keysOf(n *schemaNode) []string {
	var keys []string
	for k := range n.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestSchemaMatchesParser: the schema documents exactly the keys the parser accepts, at every level, and
// exactly the component names the reservations data knows.
func TestSchemaMatchesParser(t *testing.T) {
	root := load(t)
	iface := root.Properties["interfaces"].Items.resolve(root)
	levels := map[string]struct {
		doc  string
		node *schemaNode
	}{
		"top level":   {"version: 1\nzzz: 1\n", root},
		"interface":   {"version: 1\ninterfaces: [{zzz: 1}]\n", iface},
		"match":       {"version: 1\ninterfaces: [{match: {zzz: 1}}]\n", iface.Properties["match"]},
		"table_range": {"version: 1\ntable_range: {zzz: 1}\n", root.Properties["table_range"].resolve(root)},
	}
	for name, l := range levels {
		got, want := strings.Join(parserKeys(t, l.doc), ","), strings.Join(keysOf(l.node), ",")
		if got != want {
			t.Errorf("%s: parser allows %s, schema documents %s", name, got, want)
		}
	}
	// cni: the names reservations know, for editors to offer, and the same in any capitalization, as the parser
	// takes them.
	names := root.Properties["cni"].Items.AnyOf
	if got, want := sortedWords(names[0].Enum), strings.Join(reservations.Names(), ","); got != want {
		t.Errorf("cni enum %s, reservations know %s", got, want)
	}
	var anyCase []string
	for _, n := range reservations.Names() {
		var b strings.Builder
		for _, r := range n {
			if unicode.IsLetter(r) {
				fmt.Fprintf(&b, "[%c%c]", unicode.ToUpper(r), r)
			} else {
				b.WriteRune(r)
			}
		}
		anyCase = append(anyCase, b.String())
	}
	if got, want := names[1].Pattern, "^(?:"+strings.Join(anyCase, "|")+")$"; got != want {
		t.Errorf("cni pattern %s, want %s", got, want)
	}
	// rp_filter: strict, loose, and off in every spelling of false; default_route: every spelling of a boolean.
	rp := root.Defs["rp_filter"].Enum
	if got, want := sortedWords(rp), sortedWords(append([]any{"strict", "loose", false}, words(description.FalseWords)...)); got != want {
		t.Errorf("rp_filter enum %s, the parser takes %s", got, want)
	}
	dr := iface.Properties["default_route"].Enum
	if got, want := sortedWords(dr), sortedWords(append(append([]any{true, false}, words(description.TrueWords)...), words(description.FalseWords)...)); got != want {
		t.Errorf("default_route enum %s, the parser takes %s", got, want)
	}
}

func words(s []string) []any {
	out := make([]any, len(s))
	for i, w := range s {
		out[i] = w
	}
	return out
}

// sortedWords renders an enum for comparison: its values, sorted, booleans as JSON writes them.
func sortedWords(enum []any) string {
	var out []string
	for _, v := range enum {
		b, _ := json.Marshal(v)
		out = append(out, strings.Trim(string(b), `"`))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
