package schemas

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/reservations"
	_ "github.com/symroute/symroute/internal/tools/golden"
)

type schemaNode struct {
	Properties map[string]*schemaNode `json:"properties"`
	Items      *schemaNode            `json:"items"`
	Ref        string                 `json:"$ref"`
	Defs       map[string]*schemaNode `json:"$defs"`
	Enum       []string               `json:"enum"`
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
	enum := root.Properties["cni"].Items.Enum
	sort.Strings(enum)
	if got, want := strings.Join(enum, ","), strings.Join(reservations.Names(), ","); got != want {
		t.Errorf("cni enum %s, reservations know %s", got, want)
	}
}
