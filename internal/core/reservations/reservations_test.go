package reservations

import (
	"regexp"
	"testing"

	_ "github.com/symroute/symroute/internal/tools/golden"
)

func everyComponent() []Component { return append([]Component{Kernel}, Components...) }

// TestDefaultsAvoidEveryClaim is the promise the defaults make: whatever runs on the node, symroute's allocated
// tables and priorities collide with nothing known.
func TestDefaultsAvoidEveryClaim(t *testing.T) {
	var all []*Component
	for i := range Components {
		all = append(all, &Components[i])
	}
	for _, c := range TableConflicts(all, DefaultTables) {
		t.Errorf("default table range %s overlaps %s", DefaultTables, c.Describe("tables"))
	}
	for _, c := range PriorityConflicts(all, DefaultPriorities) {
		t.Errorf("default priority range %s overlaps %s", DefaultPriorities, c.Describe("priorities"))
	}
	if DefaultTables.Max > 1<<31-1 {
		t.Errorf("default tables reach %d, past what a signed 32-bit int holds", DefaultTables.Max)
	}
}

var componentName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

func TestDataIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range everyComponent() {
		if !componentName.MatchString(c.Name) || seen[c.Name] {
			t.Errorf("component name %q is not lowercase-kebab or is repeated", c.Name)
		}
		seen[c.Name] = true
		if len(c.Sources) == 0 {
			t.Errorf("%s has no source", c.Name)
		}
		for _, cl := range append(append([]Claim{}, c.Tables...), c.Priorities...) {
			if cl.Min > cl.Max || cl.Use == "" {
				t.Errorf("%s: claim %s (%q) is malformed", c.Name, cl.Range, cl.Use)
			}
		}
		for _, m := range c.Marks {
			if m.Mask == 0 || m.Value&^m.Mask != 0 && m.Mask != 0xffffffff {
				t.Errorf("%s: mark %s sets bits outside its mask", c.Name, FormatMark(m))
			}
		}
	}
}

func TestConflicts(t *testing.T) {
	calico, _ := Lookup("calico")
	cs := TableConflicts([]*Component{&calico}, Range{250, 253})
	var names []string
	for _, c := range cs {
		names = append(names, c.Component.Name+" "+c.Claim.Range.String())
	}
	if got := len(names); got != 3 {
		t.Fatalf("conflicts of 250-253: %v", names)
	}
	if len(TableConflicts([]*Component{&calico}, Range{251, 251})) != 0 {
		t.Error("251 is free with calico alone")
	}
}
