package description

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/symroute/symroute/internal/core/report"
)

// FuzzParse feeds the parser arbitrary bytes, seeded with every golden description. Whatever the input, Parse
// returns (no panic, no hang), every problem it reports has a line, and the printed report has no control byte.
// `go test -fuzz FuzzParse ./internal/core/description` runs it for as long as you like; make test runs it briefly.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../../../golden/*/input.yaml")
	for _, s := range seeds {
		if data, err := os.ReadFile(s); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("version: 1\ninterfaces: &a [*a]\n"))
	f.Add([]byte("version: 1\ninterfaces: [{name: \"e\\0\", addresses: [10.0.0.1/24]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, rep := Parse(data)
		if !rep.HasErrors(false) && h == nil {
			t.Fatal("no errors and no host")
		}
		for _, e := range rep.Entries {
			if e.Pos.Line <= 0 || e.Pos.Column <= 0 {
				t.Fatalf("entry without a position: %+v", e)
			}
		}
		var out bytes.Buffer
		rep.Write(&out, "host.yaml", data, false)
		for _, b := range out.Bytes() {
			if b < 0x20 && b != '\n' || b == 0x7f {
				t.Fatalf("control byte 0x%02x in the printed report", b)
			}
		}
		if h != nil && !rep.HasErrors(false) {
			for _, ifc := range h.Interfaces {
				if !validName(ifc.Name) {
					t.Fatalf("accepted interface name %s", report.Quote(ifc.Name))
				}
			}
		}
	})
}

// validName is the fuzz test's own statement of a safe name, independent of internal/ifname: printable ASCII
// without the bytes any of the files would read specially.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s[0] == '!' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte("/:%*?[]=\\\"'"), c) >= 0 {
			return false
		}
	}
	return true
}
