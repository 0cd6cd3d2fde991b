package report

import (
	"bytes"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"eth0":        `"eth0"`,
		"a\x1b[31mb":  `"a\x1b[31mb"`,
		"nul\x00":     `"nul\x00"`,
		"bad\xffutf8": `"bad\xffutf8"`,
		"\u202egnp.x": `"\u202egnp.x"`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
	long := strings.Repeat("é", 100) // 200 bytes; the cut must not split a character
	got := Quote(long)
	if !strings.HasSuffix(got, "... (200 bytes)") || strings.Contains(got, `\x`) || len(got) > 100 {
		t.Errorf("Quote(200 bytes) = %s", got)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":    "plain text",
		"a\nb\tc":       `a\x0ab\x09c`,
		"esc\x1b[2J":    `esc\x1b[2J`,
		"c1\u009bx":     `c1\xc2\x9bx`,
		"bad\xff":       `bad\xff`,
		"ünïcödé stays": "ünïcödé stays",
		"line\u2028sep": `line\xe2\x80\xa8sep`,
		"nel\u0085x":    `nel\xc2\x85x`,
		"bidi\u202ex":   `bidi\xe2\x80\xaex`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPathQuotesOddKeys(t *testing.T) {
	for _, c := range []struct {
		p    Path
		want string
	}{
		{Path{"interfaces", 1, "gateway"}, "interfaces[1].gateway"},
		{Path{"interfaces", 0, "x\ty"}, `interfaces[0]["x\ty"]`},
		{Path{"a b"}, `["a b"]`},
		{nil, "(document)"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("%#v.String() = %s, want %s", c.p, got, c.want)
		}
	}
}

// TestWriteEscapes: whatever a message or path holds, the printed report has no control byte but newlines.
func TestWriteEscapes(t *testing.T) {
	var r Report
	r.Add(Error, Path{"k\x1b"}, Pos{Line: 1, Column: 1}, "message with \x07 and \r")
	var out bytes.Buffer
	r.Write(&out, "ho\nst.yaml", nil, false)
	s := strings.TrimSuffix(out.String(), "\n")
	if strings.ContainsAny(s, "\x1b\x07\r\n") {
		t.Errorf("control bytes printed: %q", s)
	}
}

func TestNearest(t *testing.T) {
	keys := []string{"addresses", "gateway", "gateway6", "name"}
	for in, want := range map[string]string{"address": "addresses", "gatway": "gateway", "nmae": "name", "colour": ""} {
		if got := Nearest(in, keys); got != want {
			t.Errorf("Nearest(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Nearest(strings.Repeat("x", 1<<20), keys); got != "" {
		t.Errorf("a 1 MiB word is near %q", got)
	}
}

// TestWriteShowsTheSourceLine: each entry with a position is followed by its source line and a caret under the
// column; control bytes in the line are escaped with the caret still under the column, a long line is cut
// around it, and an entry without a position, or past the source's end, has no excerpt.
func TestWriteShowsTheSourceLine(t *testing.T) {
	long := "x: " + strings.Repeat("a", 300) + "!" + strings.Repeat("b", 300)
	src := "version: 1\r\ninterfaces:\n\t- name: é\x1b[31mx\n" + long + "\n"
	var r Report
	r.Add(Error, Path{"interfaces"}, Pos{Line: 2, Column: 1}, "first")
	r.Add(Warning, Path{"version"}, Pos{Line: 1, Column: 10}, "second")
	r.Add(Error, nil, Pos{Line: 3, Column: 13}, "after the escape")
	r.Add(Error, nil, Pos{Line: 4, Column: 304}, "in a long line")
	r.Add(Error, nil, Pos{Line: 1, Column: 12}, "past the end of the line")
	r.Add(Error, nil, Pos{Line: 9, Column: 1}, "past the end of the file")
	r.Add(Error, nil, Pos{}, "nowhere")
	var out bytes.Buffer
	r.Write(&out, "host.yaml", []byte(src), false)
	window := strings.Repeat("a", 50) + "!" + strings.Repeat("b", 49)
	want := `host.yaml: error: (document): nowhere
host.yaml:1:10: warning: version: second
  1 | version: 1
    |          ^
host.yaml:1:12: error: (document): past the end of the line
  1 | version: 1
    |            ^
host.yaml:2:1: error: interfaces: first
  2 | interfaces:
    | ^
host.yaml:3:13: error: (document): after the escape
  3 | \x09- name: é\x1b[31mx
    |                   ^
host.yaml:4:304: error: (document): in a long line
  4 | ...` + window + `...
    | ` + strings.Repeat(" ", 53) + `^
host.yaml:9:1: error: (document): past the end of the file
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
