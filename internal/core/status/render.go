package status

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v4"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/report"
)

// Width is the widest line the text output has, in characters.
const Width = 100

// Formats are the formats Render takes, the values of status -o.
var Formats = []string{"text", "json", "yaml"}

// Render prints the report in format (text, json or yaml). color adds ANSI colours to the text: the caller says
// whether the output is a terminal that wants them.
func Render(r Report, format string, color bool) ([]byte, error) {
	switch format {
	case "json":
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		err := enc.Encode(r)
		return b.Bytes(), err
	case "yaml":
		var b bytes.Buffer
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
		err := enc.Close()
		return b.Bytes(), err
	case "text":
		return text(r, color), nil
	}
	return nil, fmt.Errorf("no format %q; the formats are %s", format, strings.Join(Formats, ", "))
}

// The label column: two spaces, the label padded to labelWidth, two spaces; the value takes the rest of Width.
const (
	labelWidth = 9
	valueWidth = Width - 2 - labelWidth - 2
)

// ANSI colours.
const (
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	reset  = "\x1b[0m"
)

type printer struct {
	b     strings.Builder
	color bool
}

func (p *printer) paint(code, s string) string {
	if !p.color || s == "" {
		return s
	}
	return code + s + reset
}

// verdictColor is the colour of a verdict: green for ok, red for drift, yellow otherwise.
func verdictColor(v string) string {
	switch v {
	case OK:
		return green
	case Drift:
		return red
	}
	return yellow
}

// row prints a label and its values, one value a line (or more: a long one is wrapped at spaces, and a word longer
// than the column loses its start; a value that starts with "- " is an item of a list, and its later lines are
// indented under its text). first, when set, colours the first value's first word.
func (p *printer) row(label string, values []string, first string) {
	if len(values) == 0 {
		values = []string{"none"}
	}
	pad := strings.Repeat(" ", 2+labelWidth+2)
	for i, v := range values {
		width, hang := valueWidth, ""
		if strings.HasPrefix(v, "- ") {
			width, hang = valueWidth-2, "  "
		}
		for j, line := range wrapText(report.Printable(v), width) {
			if j > 0 {
				line = hang + line
			}
			lead := pad
			if i == 0 && j == 0 {
				lead = "  " + label + strings.Repeat(" ", labelWidth-len(label)+2)
				if first != "" {
					word, rest, _ := strings.Cut(line, " ")
					line = p.paint(first, word)
					if rest != "" {
						line += " " + rest
					}
				}
			}
			p.b.WriteString(lead + line + "\n")
		}
	}
}

func text(r Report, color bool) []byte {
	p := &printer{color: color}
	head := "symroute status: " + p.paint(verdictColor(r.Verdict), r.Verdict)
	if r.Description != "" {
		head += ": " + report.Printable(r.Description)
	} else {
		head += ": every link, and the rules that select it"
	}
	for _, line := range wrapText(head, Width) {
		p.b.WriteString(line + "\n")
	}
	for _, ifc := range r.Interfaces {
		p.b.WriteString("\n")
		p.iface(ifc)
	}
	if len(r.Findings) > 0 {
		p.b.WriteString("\n" + p.paint(bold, "host") + "\n")
		p.row("verdict", findingLines(r.Findings), red)
	}
	return []byte(p.b.String())
}

func (p *printer) iface(ifc Interface) {
	state := p.paint(red, ifc.State)
	if ifc.State == "up" {
		state = p.paint(green, ifc.State)
	}
	head := p.paint(bold, report.Printable(ifc.Name)) + "  " + state
	if ifc.Index > 0 {
		head += fmt.Sprintf("  (index %d)", ifc.Index)
	}
	if !ifc.Described && ifc.Verdict != NoDescription {
		head += "  not described"
	}
	p.b.WriteString(head + "\n")

	var addrs []string
	for _, a := range ifc.Addresses {
		s := a.Address
		if a.Dynamic {
			s += " dynamic"
			if a.ValidSeconds != nil {
				s += ", " + lifetime(*a.ValidSeconds)
			}
		}
		addrs = append(addrs, s)
	}
	p.row("addresses", addrs, "")

	var tables []string
	for _, t := range ifc.Tables {
		s := fmt.Sprint(t.ID)
		if t.Name != s {
			s += " " + t.Name
		}
		switch {
		case t.Routes == nil:
			s += " (routes not counted)"
		case *t.Routes == 1:
			s += " (1 route)"
		default:
			s += fmt.Sprintf(" (%d routes)", *t.Routes)
		}
		tables = append(tables, s)
	}
	p.row("tables", tables, "")

	var rules []string
	for _, r := range ifc.Rules {
		s := fmt.Sprintf("%d: %s %s", r.Priority, r.Selector, r.Action)
		if r.Family == "ipv6" {
			s += " (IPv6)"
		}
		rules = append(rules, s)
	}
	p.row("rules", rules, "")

	rp := "not read"
	if ifc.RPFilter != nil {
		rp = ifc.RPFilter.Why
	}
	p.row("rp_filter", []string{rp}, "")

	switch nd := ifc.Networkd; {
	case nd == nil:
		p.row("networkd", []string{"did not answer"}, "")
	case nd.NetworkFile == "":
		p.row("networkd", []string{nd.State + ", no .network file"}, "")
	default:
		p.row("networkd", []string{nd.State + ": " + nd.NetworkFile}, "")
		if len(nd.Dropins) > 0 {
			dropins := nd.Dropins
			if nd.DropinsFrom == FromFiles {
				dropins = append(slices.Clone(dropins), "(found beside the file: this networkd does not list drop-ins)")
			}
			p.row("drop-ins", dropins, "")
		}
	}

	if ifc.Verdict == Drift {
		p.row("verdict", findingLines(ifc.Findings), red)
	} else {
		p.row("verdict", []string{ifc.Verdict}, verdictColor(ifc.Verdict))
	}
}

// findingLines are findings as the verdict shows them, each its message and kind: after "drift: " when there is
// one, as a list under "drift, N findings:" when there are more.
func findingLines(fs []drift.Finding) []string {
	if len(fs) == 1 {
		return []string{Drift + ": " + fs[0].Message + " [" + string(fs[0].Kind) + "]"}
	}
	out := []string{fmt.Sprintf("%s, %d findings:", Drift, len(fs))}
	for _, f := range fs {
		out = append(out, "- "+f.Message+" ["+string(f.Kind)+"]")
	}
	return out
}

// lifetime renders the seconds a dynamic address stays valid.
func lifetime(s uint32) string {
	switch {
	case s == 0xffffffff:
		return "valid forever"
	case s >= 3600:
		return fmt.Sprintf("%dh%02dm left", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm%02ds left", s/60, s%60)
	}
	return fmt.Sprintf("%ds left", s)
}

// wrapText breaks s into lines of at most width characters at spaces; a word longer than width keeps its end,
// the part that names a file, after an ellipsis.
func wrapText(s string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if n := utf8.RuneCountInString(word); n > width {
			r := []rune(word)
			word = "…" + string(r[n-width+1:])
		}
		switch {
		case line == "":
			line = word
		case visible(line)+1+visible(word) > width:
			lines = append(lines, line)
			line = word
		default:
			line += " " + word
		}
	}
	return append(lines, line)
}

// visible counts the characters of s a terminal shows: its runes, less ANSI colour sequences.
func visible(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			if j := strings.IndexByte(s[i:], 'm'); j >= 0 {
				i += j + 1
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return n
}
