package description

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/report"
)

// TestHostileInputs has a case per rule for descriptions made by careless templates or by an attacker: each must
// be refused with an error at the line and column given, whose message contains the fragment given. Every
// refusal carries a line, and the printed report is free of control bytes whatever the input held.
func TestHostileInputs(t *testing.T) {
	bigKey := strings.Repeat("k", MaxSize-100)
	for _, c := range []struct {
		name      string
		src       string
		line, col int
		want      string
	}{
		{"too large", "version: 1\n# " + strings.Repeat("x", MaxSize), 1, 1, "at most 1048576"},
		{"NUL byte", "version: 1\ninterfaces:\n  - na\x00me: eth0\n", 3, 7, "NUL byte at line 3, column 7"},
		{"invalid UTF-8", "version: 1\ninterfaces:\n  - name: eth\xff\n", 3, 14, "0xff at line 3, column 14 is not valid UTF-8"},
		{"escape byte", "version: 1\n\x1b[31minterfaces: []\n", 2, 1, "control character U+001B"},
		{"C1 control", "version: 1\ninterfaces: [\u009b]\n", 2, 14, "control character U+009B"},
		{"NEL", "version: 1\n\u0085interfaces: x\n", 2, 1, "line separator U+0085"},
		{"line separator", "version: 1\ninterfaces: [] # a\u2028b\n", 2, 19, "line separator U+2028"},
		{"lone carriage return", "version: 1\rinterfaces: []\n", 1, 11, "carriage return without a newline"},
		{"syntax error on line 1", "version: 1: 2\n", 1, 11, "not valid YAML"},
		{"unclosed list", "version: 1\ninterfaces: [\n  {name: a\n", 3, 11, "not closed"},
		{"escaped NUL in a name", "version: 1\ninterfaces:\n  - name: \"eth\\0x\"\n    addresses: [10.0.0.1/24]\n", 3, 11, "is NUL"},
		{"glob in a name", "version: 1\ninterfaces:\n  - name: eth-*\n    addresses: [10.0.0.1/24]\n", 3, 11, "glob"},
		{"duplicate key", "version: 1\ninterfaces:\n  - name: eth0\n    addresses: [10.0.0.1/24]\n    gateway: 10.0.0.254\n    gateway: 10.0.0.253\n", 6, 5, "appears twice in this mapping (first at line 5)"},
		{"self-referencing anchor", "version: 1\ninterfaces: &a [*a]\n", 2, 17, "stands for a value that contains it"},
		{"too many aliases", "version: 1\nx: &a 1\ninterfaces: [" + strings.Repeat("*a, ", 65) + "*a]\n", 1, 1, "66 YAML aliases"},
		{"alias expansion", aliasBomb(300, 300), 1, 1, "expand"},
		{"huge unknown key", "version: 1\n" + bigKey + ": 1\ninterfaces: []\n", 2, 1, "... (1048476 bytes)"},
		{"priority after main", "version: 1\npriority_range: {min: 30000, max: 40000}\ninterfaces: []\n", 2, 35, "32766"},
		{"pinned priority after main", "version: 1\ninterfaces:\n  - {name: e, addresses: [10.0.0.1/24], priority: 32766}\n", 3, 51, "32766"},
		{"address /0", "version: 1\ninterfaces:\n  - {name: e, addresses: [10.0.0.1/0]}\n", 3, 27, "whole address space"},
		{"IPv6 address /0", "version: 1\ninterfaces:\n  - {name: e, addresses: [\"2001:db8::1/0\"]}\n", 3, 27, "whole address space"},
		{"IPv4-mapped cluster CIDR", "version: 1\ncluster_cidrs: [\"::ffff:10.244.0.0/112\"]\ninterfaces: []\n", 2, 17, "write it as 10.244.0.0/16"},
		{"cluster CIDR /0", "version: 1\ncluster_cidrs: [0.0.0.0/0]\ninterfaces: []\n", 2, 17, "covers every destination"},
		{"multicast MAC", "version: 1\ninterfaces:\n  - {name: e, match: {permanent_mac: \"01:00:5e:00:00:01\"}, addresses: [10.0.0.1/24]}\n", 3, 38, "multicast or all-zero"},
		{"zero MAC", "version: 1\ninterfaces:\n  - {name: e, match: {permanent_mac: \"00:00:00:00:00:00\"}, addresses: [10.0.0.1/24]}\n", 3, 38, "multicast or all-zero"},
		{"limited broadcast", "version: 1\ninterfaces:\n  - {name: e, addresses: [255.255.255.255/32]}\n", 3, 27, "broadcast address"},
		{"subnet broadcast", "version: 1\ninterfaces:\n  - {name: e, addresses: [10.0.0.255/24]}\n", 3, 27, "broadcast address"},
		{"gateway is the network address", "version: 1\ninterfaces:\n  - {name: e, addresses: [10.0.0.1/24], gateway: 10.0.0.0}\n", 3, 50, "network or broadcast address"},
		{"non-scalar key", "version: 1\n? [a]\n: 1\ninterfaces: []\n", 2, 3, "as a key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, rep := Parse([]byte(c.src))
			var found *report.Entry
			for i, e := range rep.Entries {
				if e.Pos.Line <= 0 {
					t.Errorf("entry without a line: %+v", e)
				}
				if e.Severity == report.Error && strings.Contains(e.Message, c.want) {
					found = &rep.Entries[i]
				}
			}
			if found == nil {
				t.Fatalf("no error containing %q: %+v", c.want, shorten(rep.Entries))
			}
			if found.Pos.Line != c.line || found.Pos.Column != c.col {
				t.Errorf("error at %d:%d, want %d:%d: %s", found.Pos.Line, found.Pos.Column, c.line, c.col, found.Message)
			}
			var out bytes.Buffer
			rep.Write(&out, "host.yaml", []byte(c.src), false)
			for _, b := range out.Bytes() {
				if b < 0x20 && b != '\n' || b == 0x7f {
					t.Fatalf("printed report holds the control byte 0x%02x:\n%q", b, out.String())
				}
			}
			if out.Len() > 4096 {
				t.Errorf("the report is %d bytes; a long value must be shortened, not echoed", out.Len())
			}
		})
	}
}

func shorten(entries []report.Entry) string {
	var s []string
	for _, e := range entries {
		m := e.Message
		if len(m) > 200 {
			m = m[:200] + "..."
		}
		s = append(s, fmt.Sprintf("%d:%d %s", e.Pos.Line, e.Pos.Column, m))
	}
	return strings.Join(s, "\n")
}

// aliasBomb is a small description that stands for a large one: one interface with n addresses, aliased times
// times.
func aliasBomb(n, times int) string {
	var b strings.Builder
	b.WriteString("version: 1\nx-addrs: &addrs [")
	for i := range n {
		fmt.Fprintf(&b, "10.%d.%d.1/24, ", i/256, i%256)
	}
	b.WriteString("10.255.255.1/24]\ninterfaces:\n")
	for i := range times {
		if i < 60 {
			fmt.Fprintf(&b, "  - {name: e%d, addresses: *addrs}\n", i)
		}
	}
	return b.String()
}

// TestAliasesWithinBudget: a few aliases for a shared value still work, so templates that use anchors keep
// working.
func TestAliasesWithinBudget(t *testing.T) {
	src := "version: 1\ninterfaces:\n  - &a {name: eth0, addresses: [10.0.0.1/24], gateway: 10.0.0.254}\n  - {name: eth1, addresses: [10.0.1.1/24], rp_filter: &rp strict}\n  - {name: eth2, addresses: [10.0.2.1/24], rp_filter: *rp}\n"
	h, rep := Parse([]byte(src))
	if rep.HasErrors(false) || h.Interfaces[2].RPFilter != RPFilterStrict {
		t.Fatalf("%+v", rep.Entries)
	}
}

// TestOverlapWarningsAreCapped: interfaces sharing one subnet are listed up to a bound, and the rest counted in
// one more warning, not one line per pair.
func TestOverlapWarningsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\ntable_range: {min: 1000000, max: 1009999}\npriority_range: {min: 1, max: 30000}\ninterfaces:\n")
	const n = 500
	for i := range n {
		fmt.Fprintf(&b, "  - {name: e%d, addresses: [10.0.%d.%d/16]}\n", i, i/250, i%250+1)
	}
	_, rep := Parse([]byte(b.String()))
	if got := rep.Count(report.Warning); got != maxSimilarWarnings+1 {
		t.Errorf("%d warnings for %d interfaces on one subnet, want %d", got, n, maxSimilarWarnings+1)
	}
	last := rep.Entries[len(rep.Entries)-1]
	if want := fmt.Sprintf("%d more overlapping subnets", n-1-maxSimilarWarnings); !strings.Contains(last.Message, want) {
		t.Errorf("last warning %q lacks %q", last.Message, want)
	}
}
