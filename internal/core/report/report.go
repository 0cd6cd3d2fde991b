// Package report collects every problem found in a host description, each with its path into the YAML and the
// line and column it came from, so that one run tells the user everything that needs fixing.
package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Severity says whether an entry stops symroute (Error) or is only printed (Warning; --strict promotes it).
type Severity int

const (
	Warning Severity = iota
	Error
)

func (s Severity) String() string {
	if s == Error {
		return "error"
	}
	return "warning"
}

// Path points into the description: keys are strings, list positions are ints.
type Path []any

// Key returns a copy of p extended by elems; the copy keeps sibling paths from sharing a backing array.
func (p Path) Key(elems ...any) Path {
	out := make(Path, 0, len(p)+len(elems))
	out = append(out, p...)
	return append(out, elems...)
}

// String renders p as interfaces[1].gateway; the empty path is the document itself. A key that is not a plain
// word (it comes from the description, so it can be anything) is quoted, as interfaces[0]["x\ty"].
func (p Path) String() string {
	if len(p) == 0 {
		return "(document)"
	}
	var b strings.Builder
	for _, e := range p {
		switch v := e.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(v) + "]")
		default:
			key := fmt.Sprint(v)
			if !plainKey(key) {
				b.WriteString("[" + Quote(key) + "]")
				continue
			}
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(key)
		}
	}
	return b.String()
}

func plainKey(s string) bool {
	if s == "" || len(s) > maxQuoted {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// maxQuoted is how much of a value a message shows: enough to recognise it, not a 50 MB key echoed back.
const maxQuoted = 64

// Quote renders a value taken from the input for a message: in Go's quoted form, so control bytes, terminal
// escape sequences and invalid UTF-8 print as escapes, and cut after 64 bytes with the full length named.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}

// Shorten is Printable(s) cut after 64 bytes with the full length named, for a value from a file of the system
// (a Name= list, a sysctl value) in a message: shown, not echoed back whole.
func Shorten(s string) string {
	if len(s) <= maxQuoted {
		return Printable(s)
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return Printable(s[:cut]) + fmt.Sprintf("... (%d bytes)", len(s))
}

// Printable escapes, as \xNN per byte, everything in s that is not printable text: control characters (C0,
// DEL, C1), invalid UTF-8, and the characters a terminal or a YAML reader takes for a line break or a change of
// text direction (U+2028, U+2029, bidirectional overrides). Write applies it to each line it prints, a last wall
// behind Quote: nothing read from a description or a file system reaches the terminal, or a comment in generated
// YAML, raw.
func Printable(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 || !strconv.IsPrint(r) {
			for _, c := range []byte(s[i : i+size]) {
				fmt.Fprintf(&b, "\\x%02x", c)
			}
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Pos is a 1-based line and column in the description; zero means unknown.
type Pos struct{ Line, Column int }

// Entry is one problem.
type Entry struct {
	Severity Severity
	Path     Path
	Pos      Pos
	Message  string
}

// Report is every problem found, in the order found.
type Report struct {
	Entries []Entry
}

// Add records a problem at path and pos.
func (r *Report) Add(sev Severity, path Path, pos Pos, format string, args ...any) {
	r.Entries = append(r.Entries, Entry{Severity: sev, Path: path, Pos: pos, Message: fmt.Sprintf(format, args...)})
}

// Merge appends other's entries.
func (r *Report) Merge(other Report) { r.Entries = append(r.Entries, other.Entries...) }

// HasErrors reports whether any entry is an error, or, when strict, any entry at all.
func (r Report) HasErrors(strict bool) bool {
	for _, e := range r.Entries {
		if e.Severity == Error || strict {
			return true
		}
	}
	return false
}

// Only returns the entries of severity sev, in their order.
func (r Report) Only(sev Severity) Report {
	var out Report
	for _, e := range r.Entries {
		if e.Severity == sev {
			out.Entries = append(out.Entries, e)
		}
	}
	return out
}

// Count returns how many entries have severity sev.
func (r Report) Count(sev Severity) int {
	n := 0
	for _, e := range r.Entries {
		if e.Severity == sev {
			n++
		}
	}
	return n
}

// Write prints the entries as file:line:col: severity: path: message, sorted by position so the output reads
// top to bottom like the file. When source holds an entry's line, the line follows, then a caret under the
// column, as compilers and netplan show them. With strict, warnings are printed as errors, since they stop the
// run.
func (r Report) Write(w io.Writer, file string, source []byte, strict bool) error {
	entries := append([]Entry(nil), r.Entries...)
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i].Pos, entries[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	src := lines{data: source}
	for _, e := range entries {
		sev := e.Severity
		if strict {
			sev = Error
		}
		loc := file
		if e.Pos.Line > 0 {
			loc = fmt.Sprintf("%s:%d:%d", file, e.Pos.Line, e.Pos.Column)
		}
		out := Printable(fmt.Sprintf("%s: %s: %s: %s", loc, sev, e.Path, e.Message)) + "\n"
		if line, ok := src.line(e.Pos.Line); ok {
			text, caret := excerpt(line, e.Pos.Column)
			num := strconv.Itoa(e.Pos.Line)
			out += fmt.Sprintf("  %s | %s\n  %s | %s^\n", num, text, strings.Repeat(" ", len(num)), strings.Repeat(" ", caret))
		}
		if _, err := io.WriteString(w, out); err != nil {
			return err
		}
	}
	return nil
}

// lines finds a line of a source by number, indexing the line starts once.
type lines struct {
	data   []byte
	starts []int
}

// line returns line n (1-based) without its line end; ok is false when the source has no such line.
func (l *lines) line(n int) (string, bool) {
	if len(l.data) == 0 || n < 1 {
		return "", false
	}
	if l.starts == nil {
		l.starts = []int{0}
		for i, b := range l.data {
			if b == '\n' {
				l.starts = append(l.starts, i+1)
			}
		}
	}
	if n > len(l.starts) {
		return "", false
	}
	end := len(l.data)
	if n < len(l.starts) {
		end = l.starts[n] - 1
	}
	return strings.TrimSuffix(string(l.data[l.starts[n-1]:end]), "\r"), true
}

// excerptWidth is how much of a source line an excerpt shows: enough for any line a person writes, not a 1 MiB
// line echoed back.
const excerptWidth = 100

// excerpt renders a source line for the terminal, control bytes escaped, cut to excerptWidth characters around
// column col (1-based, in characters), and says how many characters precede the column in the rendering.
func excerpt(line string, col int) (text string, caret int) {
	i := 0
	for c := 1; c < col && i < len(line); c++ {
		_, size := utf8.DecodeRuneInString(line[i:])
		i += size
	}
	shown := []rune(Printable(line))
	caret = utf8.RuneCountInString(Printable(line[:i])) + max(col-1-utf8.RuneCountInString(line[:i]), 0)
	start, end := 0, len(shown)
	if end > excerptWidth {
		start = max(0, min(caret-excerptWidth/2, end-excerptWidth))
		end = min(end, start+excerptWidth)
	}
	text = string(shown[start:end])
	caret -= start
	if start > 0 {
		text, caret = "..."+text, caret+3
	}
	if end < len(shown) {
		text += "..."
	}
	return text, caret
}
