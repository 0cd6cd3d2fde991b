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
	"slices"
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

// Dropins lists the drop-ins networkd reads for the .network file it names file (an absolute path): the *.conf
// files of a <name>.d directory in any of SearchDirs, in the order systemd applies them, as absolute paths.
// networkd 252 does not report them; later versions do (DescribeLink's NetworkFileDropins).
func Dropins(root fs.FS, file string) ([]string, error) {
	var dirs []string
	for _, d := range SearchDirs {
		dirs = append(dirs, path.Join(d, path.Base(file)+".d"))
	}
	found, err := confdirs.List(root, dirs, ".conf")
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, f := range found {
		out = append(out, "/"+f.Path)
	}
	return out, nil
}

// Link is what symroute knows of a link. Offline (a --root for an image or CI), it knows the name and what the
// description declares; on the host, the running link's facts too (Live).
type Link struct {
	Name string
	// Type is networkd's Type= for the link: the kernel's device type where it has one (wlan, bridge, vlan,
	// bond...), else the hardware type (ether, loopback...). Empty means "ether", what a described interface is
	// taken to be offline: physical NICs and veth report it.
	Type string
	// PermanentMAC is the link's permanent hardware address: declared in the description, or read (Live).
	PermanentMAC net.HardwareAddr
	// OthersPermanentMACs are permanent addresses other links are known to have (declared for other
	// interfaces): a permanent address is one device's, so this link has none of them.
	OthersPermanentMACs []net.HardwareAddr
	// Live says the facts below were read from the running link. Offline, a condition on them cannot be decided.
	Live bool
	// Kind is the link's netlink kind (vlan, bond, veth...; empty for a physical device) and MAC its current
	// address.
	Kind string
	MAC  net.HardwareAddr
	// Driver is the link's kernel driver as networkd's Driver= sees it (ethtool's answer); DriverKnown says it
	// was read (empty then means the link has none, as lo).
	Driver      string
	DriverKnown bool
}

func (l Link) kind() string {
	if l.Type == "" {
		return "ether"
	}
	return l.Type
}

// Verdict is whether a file matches a link: no, yes, or maybe, when it depends on a fact symroute does not know.
type Verdict int

const (
	No Verdict = iota
	Maybe
	Yes
)

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
	names, macs, permMACs, types, kinds, drivers, wlan list
	// other are the conditions symroute does not evaluate (Path=, Property=, Host=, Virtualization=...): a file
	// that has one matches "maybe", and messages name them.
	other []string
	empty bool
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
			case "Kind":
				m.kinds.assign(value)
			case "Driver":
				m.drivers.assign(value)
			case "WLANInterfaceType", "SSID", "BSSID":
				m.wlan.assign(value) // only a wireless link has these: any other link fails them
			default:
				m.other = append(m.other, key+"="+value)
			}
		}
	}
	m.empty = true
	for _, l := range []list{m.names, m.macs, m.permMACs, m.types, m.kinds, m.drivers, m.wlan} {
		m.empty = m.empty && len(l.items) == 0
	}
	m.empty = m.empty && len(m.other) == 0
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

// Match says whether networkd would apply f to the link, and, for a maybe, which conditions depend on what symroute
// does not know. A condition that fails decides on its own: a file for Name=wlan* is no for eth0 whatever else it
// says.
func (f File) Match(l Link) (Verdict, []string) {
	m := f.match
	var unknown []string
	check := func(key string, ls list, value string, known, glob bool) bool {
		switch {
		case len(ls.items) == 0:
			return true
		case !known:
			unknown = append(unknown, key+"="+ls.String())
			return true
		}
		return ls.matches(value, glob)
	}
	mac := func(a net.HardwareAddr) string {
		if a == nil {
			return ""
		}
		return a.String()
	}
	ok := check("Name", m.names, l.Name, true, true) &&
		check("Type", m.types, l.kind(), true, true) &&
		check("Kind", m.kinds, l.Kind, l.Live, true) &&
		check("Driver", m.drivers, l.Driver, l.DriverKnown, true) &&
		check("MACAddress", m.macs, mac(l.MAC), l.Live, false) &&
		check("PermanentMACAddress", m.permMACs, mac(l.PermanentMAC), l.Live || l.PermanentMAC != nil || others(m.permMACs, l.OthersPermanentMACs), false) &&
		(len(m.wlan.items) == 0 || l.kind() == "wlan")
	switch {
	case !ok:
		return No, nil
	case len(m.wlan.items) > 0:
		unknown = append(unknown, "the wireless conditions")
	}
	unknown = append(unknown, m.other...)
	if len(unknown) > 0 {
		return Maybe, unknown
	}
	return Yes, nil
}

// others reports whether every address a (not inverted) list names belongs to another link: then the list
// decides "no" for this one without its own address.
func others(ls list, theirs []net.HardwareAddr) bool {
	if ls.invert || len(ls.items) == 0 {
		return false
	}
	for _, it := range ls.items {
		if !slices.ContainsFunc(theirs, func(a net.HardwareAddr) bool { return strings.EqualFold(a.String(), normalizeMAC(it)) }) {
			return false
		}
	}
	return true
}

// Choice is the file networkd would apply to a link: the first that matches for certain, and the files before it
// that may match, which would take the link instead if they do.
type Choice struct {
	File  File
	Found bool
	// Uncertain are the files sorting before File (or all of them, when none matches for certain) that match
	// "maybe", with the conditions that decide.
	Uncertain []Uncertain
}

// Uncertain is a file that may match a link.
type Uncertain struct {
	File       File
	Conditions []string
}

// Choose returns the file networkd would apply to the link, and the files that may take it instead.
func Choose(files []File, l Link) Choice {
	var c Choice
	for _, f := range files {
		switch v, conds := f.Match(l); v {
		case Yes:
			c.File, c.Found = f, true
			return c
		case Maybe:
			c.Uncertain = append(c.Uncertain, Uncertain{f, conds})
		}
	}
	return c
}

// Describe names the uncertain files and what decides them, for messages.
func (c Choice) Describe() string {
	var parts []string
	for _, u := range c.Uncertain {
		parts = append(parts, fmt.Sprintf("%s (%s)", "/"+u.File.Path, strings.Join(u.Conditions, ", ")))
	}
	return strings.Join(parts, ", ")
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

// MatchSummary renders the conditions that decide which links the file takes, for messages.
func (f File) MatchSummary() string {
	var parts []string
	add := func(key string, l list) {
		if len(l.items) > 0 {
			parts = append(parts, key+"="+l.String())
		}
	}
	add("Name", f.match.names)
	add("MACAddress", f.match.macs)
	add("PermanentMACAddress", f.match.permMACs)
	add("Type", f.match.types)
	add("Kind", f.match.kinds)
	add("Driver", f.match.drivers)
	add("WLAN", f.match.wlan)
	for _, u := range f.match.other {
		parts = append(parts, report.Shorten(u))
	}
	return strings.Join(parts, ", ")
}

// String renders a list as its key's value, shortened for messages.
func (l list) String() string {
	inv := ""
	if l.invert {
		inv = "!"
	}
	return inv + report.Shorten(strings.Join(l.items, " "))
}

// FirstMatch returns the first file that matches the link for certain.
func FirstMatch(files []File, l Link) (File, bool) {
	c := Choose(files, l)
	return c.File, c.Found
}
