package description

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/internal/core/report"
)

// syntaxError turns the YAML library's error into a report entry at the place the mistake most likely is, with a
// message that says what to do. The library stops where it could read no further, which is often a line after
// the mistake: the token after an unclosed bracket, the end of the file after an unclosed quote. A reader error
// (the library's own check of the bytes) has no position; badByte has refused those before the library reads.
func syntaxError(err error, data []byte) report.Report {
	var r report.Report
	var le *yaml.LoadError
	if !errors.As(err, &le) || le.Mark.Line <= 0 {
		r.Add(report.Error, nil, report.Pos{Line: 1, Column: 1}, "the file is not valid YAML: %s; fix the syntax first", report.Printable(strings.TrimPrefix(err.Error(), "yaml: ")))
		return r
	}
	s := source{lines: strings.Split(string(data), "\n")}
	pos, msg := s.explain(le)
	r.Add(report.Error, nil, pos, "the file is not valid YAML: %s", report.Printable(msg))
	return r
}

// source is the description's text, by line, for placing and explaining a syntax error.
type source struct{ lines []string }

// line returns line n (1-based) without its line end, or "" past the end.
func (s source) line(n int) string {
	if n < 1 || n > len(s.lines) {
		return ""
	}
	return strings.TrimSuffix(s.lines[n-1], "\r")
}

// content is a line's text without its indentation and trailing blanks; "" for a blank or comment line.
func (s source) content(n int) string {
	c := strings.TrimSpace(s.line(n))
	if strings.HasPrefix(c, "#") {
		return ""
	}
	return c
}

// indent is the width of a line's leading spaces.
func (s source) indent(n int) int {
	l := s.line(n)
	return len(l) - len(strings.TrimLeft(l, " "))
}

// previousContent returns the last line before n with content, or 0.
func (s source) previousContent(n int) int {
	for n--; n > 0; n-- {
		if s.content(n) != "" {
			return n
		}
	}
	return 0
}

// endOf is the position just after the last character of line n.
func (s source) endOf(n int) report.Pos {
	return report.Pos{Line: n, Column: utf8.RuneCountInString(strings.TrimRight(s.line(n), " \t")) + 1}
}

// before is line n's text before column col (1-based, in characters).
func (s source) before(n, col int) string {
	l := s.line(n)
	i := 0
	for c := 1; c < col && i < len(l); c++ {
		_, size := utf8.DecodeRuneInString(l[i:])
		i += size
	}
	return l[:i]
}

// at is the character at line n, column col, or 0.
func (s source) at(n, col int) rune {
	rest := strings.TrimPrefix(s.line(n), s.before(n, col))
	r, _ := utf8.DecodeRuneInString(rest)
	return r
}

// explain places the error reported at le and says what is wrong and what to do.
func (s source) explain(le *yaml.LoadError) (report.Pos, string) {
	pos := report.Pos{Line: le.Mark.Line, Column: max(le.Mark.Column, 1)}
	ctx := report.Pos{Line: le.ContextMark.Line, Column: le.ContextMark.Column}
	what := strings.TrimPrefix(le.ContextMsg, "while parsing ")
	what = strings.TrimPrefix(what, "while scanning ")
	// The library's words, with where the construct it was reading starts, for every message below.
	detail := le.Message
	if le.ContextMsg != "" && ctx.Line > 0 && ctx != pos {
		detail += fmt.Sprintf(" (in %s that starts at line %d, column %d)", what, ctx.Line, ctx.Column)
	}
	tab := ""
	if s.at(pos.Line, pos.Column) == '\t' || strings.Contains(le.Message, "tab character") {
		tab = "; YAML indents with spaces, never tabs"
	}
	prev := s.previousContent(pos.Line)
	switch {
	case (what == "a flow sequence" || what == "a flow mapping") && ctx.Line > 0 && ctx.Line < pos.Line && prev > 0 &&
		!strings.ContainsAny(s.before(pos.Line, pos.Column), "[]{},"):
		// The reader met the next line's content where the bracket should have closed: the bracket is missing
		// at the end of the line before.
		open, close, kind := "[", "]", "list"
		if what == "a flow mapping" {
			open, close, kind = "{", "}", "mapping"
		}
		return s.endOf(prev), fmt.Sprintf("the %s %s opened at line %d, column %d is not closed: add %s here, or a comma and the next item",
			kind, open, ctx.Line, ctx.Column, close)
	case strings.HasPrefix(what, "a quoted scalar") && ctx.Line > 0 && ctx.Line < pos.Line:
		return ctx, "the quote opened here is not closed, so the rest of the file reads as its text: close it at the end of the value"
	case pos.Line > len(s.lines) || s.content(pos.Line) == "" && prev > 0 && s.next(pos.Line) == 0:
		// At the end of the file, after blank lines: the mistake is where the content ends.
		if prev > 0 {
			return s.endOf(prev), fmt.Sprintf("the file ends in the middle of a value: finish or remove what this line starts (%s)", detail)
		}
	case le.Message == "mapping values are not allowed in this context":
		if from := s.continues(pos); from > 0 {
			return pos, fmt.Sprintf("this line reads as more of the value on line %d, so its key cannot start here: indent it like the keys it belongs with, or add the ': ' line %d lacks after its key (%s)%s",
				from, from, detail, tab)
		}
		return pos, fmt.Sprintf("a ':' followed by a space starts a key, and this value already follows one: quote the value if the colon belongs to it, or remove the colon (%s)%s", detail, tab)
	case (strings.HasPrefix(le.Message, "did not find expected key") || strings.HasPrefix(le.Message, "did not find expected '-' indicator")) &&
		strings.TrimSpace(s.before(pos.Line, pos.Column)) == "":
		return pos, fmt.Sprintf("this line does not line up with the keys or list items around it: check its indentation against the lines above (%s)%s", detail, tab)
	case strings.HasPrefix(le.Message, "did not find expected key"):
		return pos, fmt.Sprintf("unexpected text after a value: remove it, or quote the whole value if it belongs to it (%s)%s", detail, tab)
	}
	return pos, detail + tab
}

// next returns the first line after n with content, or 0.
func (s source) next(n int) int {
	for n++; n <= len(s.lines); n++ {
		if s.content(n) != "" {
			return n
		}
	}
	return 0
}

// continues says which earlier line's value the key at pos continues, or 0: a line whose text before the colon
// holds no ": " (so the key starts the line) reads as more of a plain value that began on the last line above it
// with less indentation.
func (s source) continues(pos report.Pos) int {
	key := strings.TrimSpace(s.before(pos.Line, pos.Column))
	if key == "" || strings.Contains(key, ": ") || strings.HasPrefix(key, "- ") {
		return 0
	}
	for n := s.previousContent(pos.Line); n > 0; n = s.previousContent(n) {
		if s.indent(n) < s.indent(pos.Line) {
			return n
		}
	}
	return 0
}
