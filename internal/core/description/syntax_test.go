package description

import (
	"strings"
	"testing"
)

// TestSyntaxErrorsPointAtTheMistake: for the syntax mistakes people make, the error stands on the line (and
// column) where the fix goes, not where the YAML reader gave up, and says what to do.
func TestSyntaxErrorsPointAtTheMistake(t *testing.T) {
	for _, c := range []struct {
		name      string
		src       string
		line, col int
		want      string
	}{
		{"unclosed bracket", "version: 1\ninterfaces:\n  - name: eth-a\n    addresses: [192.168.1.10/24\n  - name: eth-b\n",
			4, 32, "the list [ opened at line 4, column 16 is not closed: add ] here"},
		{"unclosed bracket before a key", "version: 1\ncni: [calico\ninterfaces:\n  - {name: eth-a, addresses: [10.0.0.1/24]}\n",
			2, 13, "the list [ opened at line 2, column 6 is not closed"},
		{"missing comma between lines", "version: 1\ninterfaces: [\n  {name: a, addresses: [1.2.3.4/24]}\n  {name: b, addresses: [1.2.3.5/24]}\n]\n",
			3, 37, "add ] here, or a comma and the next item"},
		{"unclosed brace", "version: 1\ninterfaces:\n  - {name: eth-a, addresses: [10.0.0.1/24]\n  - name: b\n",
			3, 43, "the mapping { opened at line 3, column 5 is not closed: add } here"},
		{"unclosed quote", "version: 1\ninterfaces:\n  - name: \"eth-a\n    addresses: [10.0.0.1/24]\n",
			3, 11, "the quote opened here is not closed"},
		{"end of file inside a list", "version: 1\ninterfaces:\n  - name: eth-a\n    addresses: [10.0.0.1/24,\n\n\n",
			4, 29, "the file ends in the middle of a value"},
		{"key indented too deep", "version: 1\ninterfaces:\n  - name: eth-a\n     addresses: [10.0.0.1/24]\n",
			4, 15, "this line reads as more of the value on line 3"},
		{"key indented too little", "version: 1\ninterfaces:\n  - name: eth-a\n   addresses: [10.0.0.1/24]\n",
			4, 4, "check its indentation"},
		{"key without a colon", "version: 1\ninterfaces:\n  - name eth-a\n    addresses: [10.0.0.1/24]\n",
			4, 14, "or add the ': ' line 3 lacks after its key"},
		{"top-level key indented", "version: 1\n  interfaces: []\n", 2, 13, "more of the value on line 1"},
		{"tab indentation", "version: 1\ninterfaces:\n\t- name: eth-a\n", 3, 1, "YAML indents with spaces, never tabs"},
		{"tab before a key", "version: 1\ninterfaces:\n  - name: eth-a\n\taddresses: [10.0.0.1/24]\n", 4, 1, "YAML indents with spaces, never tabs"},
		{"stray colon", "version: 1\ninterfaces:\n  - name: eth-a: x\n    addresses: [10.0.0.1/24]\n", 3, 16, "quote the value if the colon belongs to it"},
		{"stray colon in an address", "version: 1\ninterfaces:\n  - name: eth-a\n    gateway: 10.0.0.1: 3\n", 4, 22, "quote the value"},
		{"stray bracket", "version: 1\ninterfaces:\n  - name: eth-a\n    addresses: [10.0.0.1/24]]\n", 4, 29, "unexpected text after a value"},
		{"a list item in a mapping", "version: 1\n- eth0\n", 2, 1, "check its indentation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, rep := Parse([]byte(c.src))
			if len(rep.Entries) != 1 {
				t.Fatalf("want one error, got %+v", rep.Entries)
			}
			e := rep.Entries[0]
			if e.Pos.Line != c.line || e.Pos.Column != c.col || !strings.Contains(e.Message, c.want) || !strings.HasPrefix(e.Message, "the file is not valid YAML: ") {
				t.Errorf("%d:%d %s\nwant %d:%d and %q", e.Pos.Line, e.Pos.Column, e.Message, c.line, c.col, c.want)
			}
		})
	}
}
