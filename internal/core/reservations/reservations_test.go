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

// TestFreeMarkMask: the allocated field avoids every declared claim, and there is none when the declared
// components leave no room (Cilium takes nearly every bit; a whole-mark user takes all of them).
func TestFreeMarkMask(t *testing.T) {
	comps := func(names ...string) []*Component {
		var out []*Component
		for _, n := range names {
			c, ok := Lookup(n)
			if !ok {
				t.Fatalf("no component %s", n)
			}
			out = append(out, &c)
		}
		return out
	}
	for _, c := range []struct {
		names []string
		width int
		want  uint32
	}{
		{nil, 1, 0x1000},
		{nil, 2, 0x3000},
		{[]string{"kube-proxy", "calico"}, 2, 0x3000},
		{[]string{"kube-proxy", "calico"}, 3, 0x3800},
		{[]string{"kube-proxy", "calico", "tailscale", "aws-vpc-cni"}, 1, 0x1000},
		{[]string{"cilium"}, 1, 0x2000},
		{[]string{"cilium"}, 2, 0},
		{[]string{"wg-quick"}, 1, 0},
	} {
		got, ok := FreeMarkMask(comps(c.names...), c.width)
		if got != c.want || ok != (c.want != 0) {
			t.Errorf("%v, %d bits: got %#x, %v; want %#x", c.names, c.width, got, ok, c.want)
		}
		if ok && len(MarkConflicts(comps(c.names...), got)) > 0 {
			t.Errorf("%v: %#x conflicts", c.names, got)
		}
	}
}
