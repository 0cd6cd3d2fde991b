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
	r.Write(&out, "ho\nst.yaml", false)
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
