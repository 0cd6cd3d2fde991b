// Package ifname is the one definition of an interface name symroute accepts. A name reaches the kernel, the
// [Match] Name= line of a .network file, the file's own name, a sysctl.d key, an rt_tables.d line and every
// message, so it must be valid for all of them at once:
//
//   - the kernel's dev_valid_name: 1 to 15 bytes (IFNAMSIZ less the NUL), not "." or "..", no '/', ':' or
//     whitespace (to the kernel's isspace, byte 0xA0 is whitespace too), and no '%' (the kernel's "eth%d"
//     template);
//   - networkd's Name= (systemd's ifname_valid): a list of fnmatch patterns separated by whitespace, inverted by
//     a leading '!', with '\' read as an escape (and as a line continuation at the end); a name that parses
//     as a number (42, 0x2a, 0b101) is an ifindex to it, and the whole file is ignored;
//   - sysctl.d: "key = value" where '=' splits and any of * ? [ makes the key a glob over other links;
//   - /proc/sys/net/ipv4/conf: "all" and "default" there are the global settings, not links.
//
// Quotes are refused too: networkd keeps them literally in Name=, but shells and systemd's other settings read
// them as quoting, and a name is passed to both. What remains is printable ASCII, safe on a terminal too.
package ifname

import (
	"fmt"
	"regexp"
	"strings"
)

// number matches what systemd's parse_ifindex reads as a number: decimal, 0x hex, and the 0b and 0o prefixes
// systemd adds, with a sign.
var number = regexp.MustCompile(`^[+-]?(0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|[0-9]+)$`)

// MaxLen is the longest name the kernel accepts, IFNAMSIZ (16) less the terminating NUL.
const MaxLen = 15

// Rule says in one line what a valid name is, for messages.
const Rule = `1-15 printable ASCII characters without whitespace, '/', ':', '%', glob characters (* ? [ ]), '=', '\', quotes or a leading '!', not a number (42, 0x2a), and not ".", "..", "all" or "default"`

// forbidden are the printable ASCII characters refused anywhere in a name, with the reason each is refused.
var forbidden = map[byte]string{
	'/':  "'/' separates paths, so the kernel refuses it",
	':':  "':' marks an old-style alias label, so the kernel refuses it",
	'%':  "'%' is the kernel's template for numbered names (eth%d), so the kernel and networkd refuse it",
	'*':  "'*' is a glob: networkd's Name= and a sysctl.d key would match every link",
	'?':  "'?' is a glob: networkd's Name= and a sysctl.d key would match other links",
	'[':  "'[' starts a glob set: networkd's Name= and a sysctl.d key would match other links",
	']':  "']' ends a glob set, so networkd and sysctl.d could read the name as a pattern",
	'=':  "'=' splits a sysctl.d line into key and value",
	'\\': "networkd reads '\\' as an escape (and as a line continuation at the end), so the name would not match itself",
	'"':  "quotes read as quoting to shells and to systemd's other settings, which the name is passed to",
	'\'': "quotes read as quoting to shells and to systemd's other settings, which the name is passed to",
}

// Check returns what is wrong with name, or "" when it is valid. The reason names the first offending byte by
// position, escaped, so a message that carries it is always printable.
func Check(name string) string {
	switch {
	case name == "":
		return "it is empty"
	case len(name) > MaxLen:
		return fmt.Sprintf("it is %d bytes long; the kernel takes at most %d", len(name), MaxLen)
	case name == "." || name == "..":
		return `"." and ".." name directories, so the kernel refuses them`
	case name == "all" || name == "default":
		return fmt.Sprintf("/proc/sys/net/ipv4/conf/%s holds the global setting, not a link's", name)
	case name[0] == '!':
		return "a leading '!' inverts networkd's Name= match, so the file would configure every other link"
	case number.MatchString(name):
		return "networkd reads a name that parses as a number (42, +42, 0x2a, 0b101, 0o52) as an interface index, and ignores the whole file"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == ' ':
			return fmt.Sprintf("byte %d is a space; the kernel refuses whitespace", i+1)
		case c == 0:
			return fmt.Sprintf("byte %d is NUL, which ends a line in networkd's and sysctl.d's files", i+1)
		case c == '\n' || c == '\r':
			return fmt.Sprintf("byte %d is the line break 0x%02x, which would start a new line in every file the name is written to", i+1, c)
		case c < 0x20 || c == 0x7f:
			return fmt.Sprintf("byte %d is the control character 0x%02x, which networkd refuses in a name and a terminal obeys", i+1, c)
		case c >= 0x80:
			return fmt.Sprintf("byte %d is 0x%02x, outside ASCII; networkd ignores a file with such a name in it, and 0xa0 is whitespace to the kernel", i+1, c)
		}
		if why, bad := forbidden[c]; bad {
			return fmt.Sprintf("byte %d: %s", i+1, why)
		}
	}
	return ""
}

// Valid reports whether name passes Check.
func Valid(name string) bool { return Check(name) == "" }

// SysctlKey returns the sysctl.d key for an IPv4 setting of a valid name. A name with a dot (a VLAN such as
// eth0.100) needs the slash form, where dots are literal (sysctl.d(5)).
func SysctlKey(name, setting string) string {
	if strings.Contains(name, ".") {
		return "net/ipv4/conf/" + name + "/" + setting
	}
	return "net.ipv4.conf." + name + "." + setting
}
