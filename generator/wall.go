package generator

import (
	"fmt"
	"net"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
)

// The second wall. Validation refuses every value that is unsafe for the files it reaches; this checks the
// rendered bytes themselves, against the grammar of each file's format, before any file is handed out. Every
// line must be blank, a comment, or a line the format defines with a value of the kind that key takes. A value
// that got past validation with a line break, a NUL, a quote, a glob or a trailing backslash cannot make a line
// pass here, so a gap in validation becomes a refusal, never a file that says something else.

// networkdKeys are the keys symroute writes, by section, and what each value must be. networkd.conf drop-ins and
// .network files share it: their sections do not overlap.
var networkdKeys = map[string]map[string]func(string) bool{
	"Match": {
		"Name":                ifname.Valid,
		"PermanentMACAddress": isMAC,
	},
	"Network": {
		"IPv6AcceptRA":                    isOneOf("no", "yes"),
		"DHCP":                            isWord("ipv4"),
		"Address":                         isPrefix,
		"ManageForeignRoutingPolicyRules": isWord("no"),
		"ManageForeignRoutes":             isWord("no"),
	},
	"Route": {
		"Destination": isPrefix,
		"Gateway":     isAddr,
		"Scope":       isWord("link"),
		"Table":       isTable,
	},
	"DHCPv4": {
		"RouteTable": isUint32,
	},
	"IPv6AcceptRA": {
		"RouteTable": isUint32,
	},
	"RoutingPolicyRule": {
		"SuppressPrefixLength": isWord("0"),
		"From":                 isPrefix,
		"To":                   isPrefix,
		"IncomingInterface":    ifname.Valid,
		"FirewallMark":         isMarkSelector,
		"Table":                isTable,
		"Priority":             isUint32,
		"Family":               isOneOf("ipv4", "ipv6", "both"),
	},
}

// unitKeys are the keys of symroute's connmark unit, each with the one value symroute writes: the unit runs a
// command as root at boot, so nothing in it may vary.
var unitKeys = map[string]map[string]func(string) bool{
	"Unit": {
		"Description":          isWord("symroute connection marks"),
		"DefaultDependencies":  isWord("no"),
		"Wants":                isWord("network-pre.target"),
		"Before":               isWord("network-pre.target shutdown.target"),
		"After":                isWord("nftables.service symroute-recover.service"),
		"PartOf":               isWord("nftables.service"),
		"ReloadPropagatedFrom": isWord("nftables.service"),
		"ConditionPathExists":  isWord("/" + ownership.ConnmarkRulesetPath),
		"Conflicts":            isWord("shutdown.target"),
	},
	"Service": {
		"Type":            isWord("oneshot"),
		"RemainAfterExit": isWord("yes"),
		"ExecStart":       isWord(NFT + " -f /" + ownership.ConnmarkRulesetPath),
		"ExecReload":      isWord(NFT + " -f /" + ownership.ConnmarkRulesetPath),
	},
	"Install": {
		"WantedBy": isWord("sysinit.target"),
	},
}

// followUnitKeys are the keys of the follower's unit: fixed values but the command's interface arguments.
var followUnitKeys = map[string]map[string]func(string) bool{
	"Unit": {
		"Description":         isWord("symroute address follower"),
		"DefaultDependencies": isWord("no"),
		"Wants":               isWord("network-pre.target"),
		"Before":              isWord("network-pre.target systemd-networkd.service shutdown.target"),
		"After":               isWord("symroute-recover.service"),
		"Conflicts":           isWord("shutdown.target"),
		"ConditionPathExists": isWord("/" + ownership.FollowScriptPath),
	},
	"Service": {
		"Type":       isWord("simple"),
		"ExecStart":  isFollowCommand,
		"Restart":    isWord("always"),
		"RestartSec": isWord("1"),
	},
	"Install": {
		"WantedBy": isWord("sysinit.target"),
	},
}

// isFollowCommand accepts bash running the follower's script with NAME:TABLE:PRIORITY arguments, each name one
// the kernel takes, written with systemd's $ and % escaped.
func isFollowCommand(s string) bool {
	words := strings.Split(s, " ")
	if len(words) < 3 || words[0] != Bash || words[1] != "/"+ownership.FollowScriptPath {
		return false
	}
	for _, w := range words[2:] {
		name, rest, ok := strings.Cut(w, ":")
		table, prio, ok2 := strings.Cut(rest, ":")
		unescaped := strings.NewReplacer("$$", "$", "%%", "%").Replace(name)
		if !ok || !ok2 || !isUint32(table) || !isUint32(prio) || !ifname.Valid(unescaped) || unitEscape(unescaped) != name {
			return false
		}
	}
	return true
}

// followScriptBody is the follower's script below its header: it takes nothing from the description, so the
// rendered file must be exactly it.
var followScriptBody = func() string {
	var b strings.Builder
	if err := tmpl.ExecuteTemplate(&b, "follow-addresses.tmpl", followView{}); err != nil {
		panic(err)
	}
	return strings.SplitN(b.String(), "\n\n", 2)[1]
}()

// checkFollowScript refuses a script that is not the header and then followScriptBody.
func checkFollowScript(data []byte) error {
	head, body, ok := strings.Cut(string(data), "\n\n")
	if !ok || body != followScriptBody || !strings.HasPrefix(head, ownership.HeaderPrefix) {
		return fmt.Errorf("/%s is not symroute's follower script", ownership.FollowScriptPath)
	}
	for line := range strings.SplitSeq(head, "\n") {
		if !strings.HasPrefix(line, "# ") || controlByte(line) >= 0 {
			return fmt.Errorf("/%s has a header line that is not a comment: %q", ownership.FollowScriptPath, line)
		}
	}
	return nil
}

// nftLines are the lines symroute's nftables file holds: fixed ones, and the per-interface rules with a name
// (checked apart) and marks in hex.
var nftLines = []*regexp.Regexp{
	regexp.MustCompile(`^table inet ` + ownership.NFTTable + `$`),
	regexp.MustCompile(`^delete table inet ` + ownership.NFTTable + `$`),
	regexp.MustCompile(`^table inet ` + ownership.NFTTable + ` \{$`),
	regexp.MustCompile(`^    chain (prerouting|output|forward) \{$`),
	regexp.MustCompile(`^        type filter hook forward priority mangle; policy accept;$`),
	regexp.MustCompile(`^        ip6 saddr fe80::/10 return$`),
	regexp.MustCompile(`^        ip saddr 169\.254\.0\.0/16 return$`),
	regexp.MustCompile(`^        meta mark and 0x[0-9a-f]{8} != 0x00000000 meta mark set meta mark and 0x[0-9a-f]{8}$`),
	regexp.MustCompile(`^        type filter hook prerouting priority dstnat \+ 10; policy accept;$`),
	regexp.MustCompile(`^        type route hook output priority mangle; policy accept;$`),
	regexp.MustCompile(`^        iifname "(?P<name>[^"]*)" ct state new ct direction original (fib daddr type local|ct status dnat) ct mark set ct mark and 0x[0-9a-f]{8} or 0x[0-9a-f]{8}$`),
	regexp.MustCompile(`^        (iifname "(?P<name>[^"]*)" ct direction original|ct direction reply) ct mark and 0x[0-9a-f]{8} == 0x[0-9a-f]{8} meta mark set meta mark and 0x[0-9a-f]{8} or 0x[0-9a-f]{8}$`),
	regexp.MustCompile(`^    \}$`),
	regexp.MustCompile(`^\}$`),
}

func nftLineOK(line string) string {
	for _, re := range nftLines {
		if m := re.FindStringSubmatch(line); m != nil {
			// A line that names an interface names one networkd and the kernel would take.
			if i := re.SubexpIndex("name"); i > 0 && strings.HasPrefix(line, "        iifname") && !ifname.Valid(m[i]) {
				return "not an interface name in iifname"
			}
			return ""
		}
	}
	return "not a line of symroute's nftables table"
}

var (
	sysctlLine   = regexp.MustCompile(`^(net[./]ipv4[./]conf[./])(.+)([./])(rp_filter|src_valid_mark) = ([0-9])$`)
	rtTablesLine = regexp.MustCompile(`^([0-9]+) ` + regexp.QuoteMeta(plan.TablePrefix) + `(.+)$`)
)

// checkFile refuses a rendered file any line of which is not of its format's grammar.
func checkFile(f fileset.File) error {
	var check func(line string) string
	switch {
	case strings.HasSuffix(f.Path, ".network") || f.Path == ownership.NetworkdConfPath || strings.HasSuffix(path.Dir(f.Path), ".network.d"):
		section := ""
		check = func(line string) string { return networkdLine(line, &section) }
	case f.Path == ownership.SysctlPath:
		check = sysctlLineOK
	case f.Path == ownership.RTTablesPath:
		check = rtTablesLineOK
	case f.Path == ownership.ConnmarkRulesetPath:
		check = nftLineOK
	case f.Path == ownership.ConnmarkUnitPath:
		section := ""
		check = func(line string) string { return iniLine(unitKeys, line, &section) }
	case f.Path == ownership.FollowUnitPath:
		section := ""
		check = func(line string) string { return iniLine(followUnitKeys, line, &section) }
	case f.Path == ownership.FollowScriptPath:
		return checkFollowScript(f.Data)
	default:
		return fmt.Errorf("no grammar for %s", f.Path)
	}
	if !utf8.Valid(f.Data) {
		return fmt.Errorf("%s is not valid UTF-8", f.Path)
	}
	lineNo := 0
	for line := range strings.SplitSeq(strings.TrimSuffix(string(f.Data), "\n"), "\n") {
		lineNo++
		if bad := controlByte(line); bad >= 0 {
			return fmt.Errorf("%s line %d holds the control byte 0x%02x", f.Path, lineNo, line[bad])
		}
		if line == "" || strings.HasPrefix(line, "# ") || line == "#" {
			continue
		}
		if why := check(line); why != "" {
			return fmt.Errorf("%s line %d %q: %s", f.Path, lineNo, line, why)
		}
	}
	return nil
}

func controlByte(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return i
		}
	}
	return -1
}

func networkdLine(line string, section *string) string { return iniLine(networkdKeys, line, section) }

// iniLine checks one line of a systemd INI file against the sections and keys symroute writes there.
func iniLine(keys map[string]map[string]func(string) bool, line string, section *string) string {
	if name, ok := strings.CutPrefix(line, "["); ok {
		name, ok = strings.CutSuffix(name, "]")
		if _, known := keys[name]; !ok || !known {
			return "not a section symroute writes"
		}
		*section = name
		return ""
	}
	key, value, ok := strings.Cut(line, "=")
	if !ok || !word(key) {
		return "neither a section, a comment nor Key=Value"
	}
	valid, ok := keys[*section][key]
	switch {
	case *section == "":
		return "a key before any section"
	case !ok:
		return "not a key symroute writes in [" + *section + "]"
	case !valid(value):
		return "not a valid value for " + key
	}
	return ""
}

// word reports whether s is a non-empty run of ASCII letters and digits, as networkd's keys are.
func word(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func sysctlLineOK(line string) string {
	m := sysctlLine.FindStringSubmatch(line)
	if m == nil {
		return "not an rp_filter or src_valid_mark assignment"
	}
	key, name := m[1]+m[2]+m[3]+m[4], m[2]
	if key == "net.ipv4.conf.all.rp_filter" {
		return ""
	}
	// The exact key for the name: a dot in it needs the slash form, or the key would split there.
	if !ifname.Valid(name) || key != ifname.SysctlKey(name, m[4]) {
		return "not the key of one interface"
	}
	return ""
}

func rtTablesLineOK(line string) string {
	m := rtTablesLine.FindStringSubmatch(line)
	if m == nil {
		return "not \"<id> symroute-<name>\""
	}
	if !isUint32(m[1]) || !ifname.Valid(m[2]) {
		return "not a table id and an interface name"
	}
	return ""
}

func isWord(w string) func(string) bool { return func(s string) bool { return s == w } }

func isOneOf(words ...string) func(string) bool {
	return func(s string) bool { return slices.Contains(words, s) }
}

// isMarkSelector accepts value/mask as symroute writes them: two 32-bit hex numbers, the value within the mask.
func isMarkSelector(s string) bool {
	v, m, ok := strings.Cut(s, "/")
	value, err1 := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 32)
	mask, err2 := strconv.ParseUint(strings.TrimPrefix(m, "0x"), 16, 32)
	return ok && err1 == nil && err2 == nil && len(v) == 10 && len(m) == 10 && strings.HasPrefix(v, "0x") && strings.HasPrefix(m, "0x") &&
		value != 0 && value&^mask == 0
}

func isUint32(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil && s == strings.TrimLeft(s, "+")
}

func isTable(s string) bool { return s == "main" || isUint32(s) }

func isPrefix(s string) bool {
	p, err := netip.ParsePrefix(s)
	return err == nil && p.String() == s
}

func isAddr(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.String() == s
}

func isMAC(s string) bool {
	m, err := net.ParseMAC(s)
	return err == nil && len(m) == 6 && m.String() == s
}
