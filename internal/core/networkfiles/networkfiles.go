// Package networkfiles finds the .network file systemd-networkd would apply to a link, reading a root directory
// the way networkd reads the system: /etc, /run and /usr/lib sorted together by file name, a name in an earlier
// directory masking the same name in a later one, and the first file whose [Match] fits the link winning.
package networkfiles

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"path"
	"strings"

	"github.com/symroute/symroute/internal/core/confdirs"
	"github.com/symroute/symroute/internal/core/report"
)

// SearchDirs are networkd's configuration directories in precedence order, relative to the root.
var SearchDirs = []string{
	"etc/systemd/network",
	"run/systemd/network",
	"usr/local/lib/systemd/network",
	"usr/lib/systemd/network",
	"lib/systemd/network",
}

// Link is what symroute knows of a link before it exists: its name, its kind as networkd's Type= sees it, and,
// when declared, its permanent MAC.
type Link struct {
	Name         string
	PermanentMAC net.HardwareAddr
	// Type is networkd's name for the link's kind: "loopback" for lo; empty for a described interface, which is
	// taken to be Ethernet ("ether"), as veth, VLAN and physical NICs alike report to networkd's Type=.
	Type string
}

func (l Link) kind() string {
	if l.Type == "" {
		return "ether"
	}
	return l.Type
}

// File is one .network file that networkd would load.
type File struct {
	// Path is relative to the root, like run/systemd/network/10-netplan-eth0.network.
	Path string
	// Name is the file name, the key networkd sorts by.
	Name  string
	match match
}

// match holds a [Match] section's conditions. Lists are merged across repeated keys, as networkd merges them.
type match struct {
	names, macs, permMACs, types list
	// unknown are the conditions symroute cannot evaluate before the link exists (Type=, Driver=, Path=...).
	// They are assumed to hold, and named in messages so the user can judge.
	unknown []string
	empty   bool
}

// list is a networkd match list: space-separated patterns, inverted as a whole by a leading "!".
type list struct {
	items  []string
	invert bool
}

// Load reads every .network file under the root that networkd would consider, in the order it considers them.
// Files for which skip returns true (symroute's own, about to be rewritten) are left out.
func Load(root fs.FS, skip func(path string, data []byte) bool) ([]File, error) {
	found, err := confdirs.List(root, SearchDirs, ".network")
	if err != nil {
		return nil, err
	}
	var files []File
	for _, f := range found {
		data, err := fs.ReadFile(root, f.Path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f.Path, err)
		}
		if skip != nil && skip(f.Path, data) {
			continue
		}
		m, loaded := parseMatch(data)
		if !loaded || m.empty {
			continue // networkd ignores a file it cannot parse, or one without [Match] conditions
		}
		files = append(files, File{Path: f.Path, Name: f.Name, match: m})
	}
	return files, nil
}

// parseMatch reads the [Match] sections of a .network file the way systemd's config parser reads a file: line
// by line, leading whitespace skipped, '#' and ';' starting a comment, a line ending in an unescaped '\\'
// continued on the next, "[Section]" headers, and Key=Value split at the first '=' with both sides trimmed. A
// section header without its ']' or a line past systemd's 1 MiB limit makes networkd ignore the whole file, so
// loaded is false then. It is linear in the file's size, whatever it holds.
func parseMatch(data []byte) (m match, loaded bool) {
	section := ""
	var pending strings.Builder // a line continued with '\\'
	for len(data) > 0 || pending.Len() > 0 {
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		if len(raw) > maxLine {
			return match{}, false
		}
		line := strings.TrimLeft(string(raw), " \t\r")
		if line != "" && (line[0] == '#' || line[0] == ';') {
			if len(data) > 0 || pending.Len() == 0 {
				continue // a comment inside a continued line is skipped, as systemd does
			}
			line = ""
		}
		if continued(line) {
			pending.WriteString(line[:len(line)-1] + " ")
			if len(data) > 0 {
				continue
			}
			line = ""
		}
		if pending.Len() > 0 {
			line = pending.String() + line
			pending.Reset()
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case line[0] == '[':
			if !strings.HasSuffix(line, "]") {
				return match{}, false
			}
			section = line[1 : len(line)-1]
		case section == "Match":
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				continue // networkd: "Missing '=', ignoring line."
			}
			key, value = strings.TrimSpace(key), strings.TrimSpace(value)
			switch key {
			case "Name":
				m.names.assign(value)
			case "MACAddress":
				m.macs.assign(value)
			case "PermanentMACAddress":
				m.permMACs.assign(value)
			case "Type":
				m.types.assign(value)
			default:
				m.unknown = append(m.unknown, key+"="+value)
			}
		}
	}
	m.empty = len(m.names.items) == 0 && len(m.macs.items) == 0 && len(m.permMACs.items) == 0 && len(m.types.items) == 0 && len(m.unknown) == 0
	return m, true
}

// maxLine is systemd's LONG_LINE_MAX: a longer line makes the parser give up on the file.
const maxLine = 1 << 20

// continued reports whether line ends in a '\\' that is not itself escaped.
func continued(line string) bool {
	escaped := false
	for i := 0; i < len(line); i++ {
		if escaped {
			escaped = false
		} else if line[i] == '\\' {
			escaped = true
		}
	}
	return escaped
}

// assign applies one Name=-style line: an empty value resets the list, otherwise its words are appended.
func (l *list) assign(v string) {
	v = strings.TrimSpace(v)
	if v == "" {
		*l = list{}
		return
	}
	if strings.HasPrefix(v, "!") {
		l.invert = true
		v = v[1:]
	}
	l.items = append(l.items, strings.Fields(v)...)
}

// matches reports whether value fits the list, by glob for names and case-insensitively for MACs.
func (l list) matches(value string, glob bool) bool {
	hit := false
	for _, it := range l.items {
		if glob {
			if ok, _ := path.Match(it, value); ok {
				hit = true
				break
			}
		} else if strings.EqualFold(normalizeMAC(it), value) {
			hit = true
			break
		}
	}
	return hit != l.invert
}

func normalizeMAC(s string) string {
	if mac, err := net.ParseMAC(s); err == nil {
		return mac.String()
	}
	return s
}

// Matches reports whether networkd would apply f to the link, assuming the conditions symroute cannot evaluate
// hold.
func (f File) Matches(l Link) bool {
	m := f.match
	if len(m.names.items) > 0 && !m.names.matches(l.Name, true) {
		return false
	}
	if len(m.types.items) > 0 && !m.types.matches(l.kind(), true) {
		return false
	}
	for _, macs := range []list{m.macs, m.permMACs} {
		if len(macs.items) == 0 {
			continue
		}
		// Without a declared MAC, assume the link's is not among those listed: a file that names MACs is
		// usually written for another link.
		if l.PermanentMAC == nil {
			if !macs.invert {
				return false
			}
			continue
		}
		if !macs.matches(l.PermanentMAC.String(), false) {
			return false
		}
	}
	return true
}

// Specific reports whether f can only ever match this one link: a single literal name, or a single MAC. A
// drop-in onto any other file would land on every link the file matches.
func (f File) Specific(l Link) bool {
	m := f.match
	single := func(ls list) bool { return len(ls.items) == 1 && !ls.invert }
	if single(m.names) && !strings.ContainsAny(m.names.items[0], "*?[") && m.names.items[0] == l.Name {
		return true
	}
	for _, macs := range []list{m.macs, m.permMACs} {
		if single(macs) && l.PermanentMAC != nil && strings.EqualFold(normalizeMAC(macs.items[0]), l.PermanentMAC.String()) {
			return true
		}
	}
	return false
}

// Assumed lists the file's conditions that were assumed to hold.
func (f File) Assumed() []string { return f.match.unknown }

// MatchSummary renders the conditions that decide which links the file takes, for messages.
func (f File) MatchSummary() string {
	var parts []string
	add := func(key string, l list) {
		if len(l.items) > 0 {
			inv := ""
			if l.invert {
				inv = "!"
			}
			parts = append(parts, key+"="+inv+report.Shorten(strings.Join(l.items, " ")))
		}
	}
	add("Name", f.match.names)
	add("MACAddress", f.match.macs)
	add("PermanentMACAddress", f.match.permMACs)
	add("Type", f.match.types)
	for _, u := range f.match.unknown {
		parts = append(parts, report.Shorten(u))
	}
	return strings.Join(parts, ", ")
}

// FirstMatch returns the file networkd would apply to the link.
func FirstMatch(files []File, l Link) (File, bool) {
	for _, f := range files {
		if f.Matches(l) {
			return f, true
		}
	}
	return File{}, false
}
