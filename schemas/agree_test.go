package schemas

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/plan"
)

// beyondSchema are the golden cases the parser refuses for what JSON Schema cannot say, and why. (What only the
// plan refuses, components' claims and ranges, and what only the root's files make wrong, are beyond it too, as
// is YAML that does not load.)
var beyondSchema = map[string]string{
	"invalid-addresses":                "an address's meaning: host bits, broadcast, prefix length, duplicates across interfaces",
	"invalid-gateways":                 "a gateway inside one of its interface's subnets",
	"invalid-ranges":                   "a range's min above its max",
	"invalid-track-connections-values": "a mask of contiguous bits, and a gateway where track_connections is set",
}

func compiled(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(HostV1))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("host.v1.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("host.v1.schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

// instance reads a description as a schema validator does: with YAML 1.2, as symroute does, or with YAML 1.1,
// where plain yes, no, on, off, y and n (any case) are booleans. ok is false when the YAML does not load as one document.
func instance(t *testing.T, data []byte, yaml11 bool) (any, bool) {
	t.Helper()
	// One document, as check reads; a validator would read the first of several, check refuses them.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, second yaml.Node
	if err := dec.Decode(&doc); err != nil || len(doc.Content) == 0 || dec.Decode(&second) == nil {
		return nil, false
	}
	var convert func(n *yaml.Node) any
	convert = func(n *yaml.Node) any {
		switch n.Kind {
		case yaml.AliasNode:
			return convert(n.Alias)
		case yaml.MappingNode:
			m := map[string]any{}
			for i := 0; i+1 < len(n.Content); i += 2 {
				m[n.Content[i].Value] = convert(n.Content[i+1])
			}
			return m
		case yaml.SequenceNode:
			l := []any{}
			for _, c := range n.Content {
				l = append(l, convert(c))
			}
			return l
		}
		if yaml11 && n.Style == 0 && n.Tag == "!!str" {
			if slices.Contains(description.TrueWords, n.Value) {
				return true
			}
			if slices.Contains(description.FalseWords, n.Value) {
				return false
			}
		}
		var v any
		if err := n.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// Through JSON, as a validator sees a document: numbers as JSON numbers.
	b, err := json.Marshal(convert(doc.Content[0]))
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// accepted says whether check accepts a description, as far as it needs no root: parsed and planned without
// an error. parsed says whether the parser alone accepts it.
func accepted(data []byte) (ok, parsed bool) {
	h, rep := description.Parse(data)
	if rep.HasErrors(false) {
		return false, false
	}
	_, planRep := plan.Build(h)
	return !planRep.HasErrors(false), true
}

// TestSchemaAgreesWithCheck: every golden description check accepts, every shipped example and the README's,
// validates against the schema, read as YAML 1.2 and as YAML 1.1; every golden description the parser refuses
// fails it, unless what it refuses is beyond JSON Schema.
func TestSchemaAgreesWithCheck(t *testing.T) {
	schema := compiled(t)
	inputs, err := filepath.Glob("../golden/*/input.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	examples, _ := filepath.Glob("../examples/*.yaml")
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, _ := strings.Cut(string(readme), "## The host description (version 1)\n\n```yaml\n")
	block, _, _ = strings.Cut(block, "```")
	docs := map[string][]byte{"README.md": []byte(block)}
	for _, p := range append(inputs, examples...) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		docs[p] = data
	}
	for p, data := range docs {
		name := filepath.Base(filepath.Dir(p))
		valid, parsed := accepted(data)
		if check, err := os.ReadFile(filepath.Join(filepath.Dir(p), "check.txt")); err == nil {
			valid = strings.HasPrefix(string(check), "exit status 0\n") // check against the case's root
		}
		for _, yaml11 := range []bool{false, true} {
			v, loads := instance(t, data, yaml11)
			switch {
			case valid && !loads:
				t.Errorf("%s: check accepts it, but it does not load as YAML", p)
			case valid:
				if err := schema.Validate(v); err != nil {
					t.Errorf("%s (YAML 1.1: %v): check accepts it, the schema refuses it: %v", p, yaml11, err)
				}
			case parsed || !loads || beyondSchema[name] != "":
			default:
				if err := schema.Validate(v); err == nil {
					t.Errorf("%s (YAML 1.1: %v): check refuses it, the schema accepts it; make the schema say why, or list it in beyondSchema", p, yaml11)
				}
			}
		}
	}
	for name := range beyondSchema {
		if _, err := os.Stat(filepath.Join("../golden", name, "input.yaml")); err != nil {
			t.Errorf("beyondSchema lists %s, which is not a golden case", name)
		}
	}
}

// TestSchemaNamesAsCheck: an interface name passes the schema exactly when check takes it.
func TestSchemaNamesAsCheck(t *testing.T) {
	schema := compiled(t)
	names := []string{"eth0", "eth0.100", "br-lan_1", ".", "..", "all", "default", "all0", "!eth0", "eth!0", "42", "+42",
		"-7", "0x2a", "0X2A", "0b101", "0o52", "0x", "1e3", "fifteen-bytes-1", "sixteen-bytes-12", "a b", "é", "", "eth\t0"}
	for c := byte(0); c < 0x80; c++ {
		names = append(names, "e"+string(c)+"0")
	}
	for _, n := range names {
		doc := map[string]any{"version": json.Number("1"), "interfaces": []any{map[string]any{"name": n, "addresses": []any{"10.0.0.1/24"}}}}
		err := schema.Validate(doc)
		if (err == nil) != ifname.Valid(n) {
			t.Errorf("name %q: schema error %v, check's rule says valid %v", n, err, ifname.Valid(n))
		}
	}
}

// TestSchemaAgreesOnEdges: on the values where a schema and the parser most easily part (the spellings YAML 1.1
// reads as booleans, quoted numbers, capitalized component names, MAC forms, ranges' bounds), the schema
// accepts a description, read as YAML 1.2 or 1.1, exactly when check does.
func TestSchemaAgreesOnEdges(t *testing.T) {
	schema := compiled(t)
	iface := func(extra string) string {
		return "version: 1\ninterfaces:\n  - name: eth0\n    addresses: [10.0.0.1/24]\n    gateway: 10.0.0.254\n" + extra
	}
	for _, doc := range []string{
		iface("    rp_filter: off\n"), iface("    rp_filter: no\n"), iface("    rp_filter: false\n"), iface("    rp_filter: Off\n"),
		iface("    rp_filter: 'no'\n"), iface("    rp_filter: on\n"), iface("    rp_filter: yes\n"), iface("    rp_filter: true\n"),
		iface("    rp_filter: 1\n"), iface("    rp_filter: Strict\n"), iface("    rp_filter: loose\n"),
		iface("    default_route: yes\n"), iface("    default_route: on\n"), iface("    default_route: Y\n"),
		iface("    default_route: \"yes\"\n"), iface("    default_route: 1\n"), iface("    default_route: maybe\n"),
		iface("    table: \"100\"\n"), iface("    table: 0\n"), iface("    table: 4294967296\n"),
		iface("    priority: 32765\n"), iface("    priority: 32766\n"),
		iface("    match: {permanent_mac: \"02:00:00:aa:bb:cc\"}\n"), iface("    match: {permanent_mac: 02-00-00-AA-BB-CC}\n"),
		iface("    match: {permanent_mac: 0200.00aa.bbcc}\n"), iface("    match: {permanent_mac: \"01:00:5e:00:00:01\"}\n"),
		iface("    match: {permanent_mac: \"00:00:00:00:00:00\"}\n"), iface("    match: {permanent_mac: \"02:00:00:aa:bb-cc\"}\n"),
		iface("    mode: drop-in\n"), iface("    mode: Own\n"),
		"version: '1'\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n",
		"version: 1\ninterfaces: []\n",
		"version: 1\ncni: [Calico, kube-proxy]\ncluster_cidrs: [10.244.0.0/16]\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n",
		"version: 1\ncni: [cilum]\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n",
		"version: 1\ncni: [calico, calico]\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n",
		"version: 1\npriority_range: {min: 30000, max: 32765}\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n",
		"version: 1\npriority_range: {min: 30000, max: 40000}\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n",
		"version: 1\ntable_range: {min: 5000000}\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24]}]\n",
		"version: 1\nrp_filter_all: no\ninterfaces: [{name: eth0, addresses: [10.0.0.1/24], rp_filter: off}]\n",
	} {
		valid, _ := accepted([]byte(doc))
		for _, yaml11 := range []bool{false, true} {
			v, loads := instance(t, []byte(doc), yaml11)
			if !loads {
				t.Fatalf("does not load: %q", doc)
			}
			if err := schema.Validate(v); (err == nil) != valid {
				t.Errorf("%q (YAML 1.1: %v): check accepts it: %v; schema: %v", doc, yaml11, valid, err)
			}
		}
	}
}
