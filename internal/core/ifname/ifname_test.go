package ifname

import (
	"strings"
	"testing"

	_ "github.com/symroute/symroute/internal/tools/golden"
)

// TestCheck has a case per rule: each refused name must be refused for the reason its rule gives, so a rule that
// stops firing (or fires for the wrong reason) fails here.
func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name, why string // why: a fragment of the reason; "" means valid
	}{
		{"eth0", ""},
		{"bond0.100", ""},
		{"eth123456789012", ""},
		{"e-1_2+3@x&y#z~", ""},
		{"a;b,c|d<e>(f)", ""},
		{"a{b}^c`d$e", ""},
		{".lead", ""},
		{"-lead", ""},
		{"#x", ""},
		{"a!b", ""},
		{"", "empty"},
		{"1234567890123456", "16 bytes long"},
		{"1234", "parses as a number"},
		{"0", "parses as a number"},
		{"0x1F", "parses as a number"},
		{"+5", "parses as a number"},
		{"0b101", "parses as a number"},
		{"0o17", "parses as a number"},
		{"0xg", ""},
		{"1e3", ""},
		{"eth%d", "'%'"},
		{".", `"." and ".."`},
		{"..", `"." and ".."`},
		{"all", "global setting"},
		{"default", "global setting"},
		{"!eth0", "leading '!'"},
		{"a b", "space"},
		{"a\tb", "control character 0x09"},
		{"a\nb", "line break 0x0a"},
		{"a\x00b", "NUL"},
		{"a\x1b[31m", "control character 0x1b"},
		{"a\x7fb", "control character 0x7f"},
		{"a\xa0b", "0xa0, outside ASCII"},
		{"é", "outside ASCII"},
		{"a/b", "'/'"},
		{"a:b", "':'"},
		{"eth-*", "'*' is a glob"},
		{"eth?", "'?' is a glob"},
		{"eth-[bc]", "'[' starts a glob"},
		{"eth]", "']'"},
		{"a=b", "'=' splits"},
		{`eth\`, `'\'`},
		{`a"b`, "quotes"},
		{"a'b", "quotes"},
	} {
		got := Check(c.name)
		switch {
		case c.why == "" && got != "":
			t.Errorf("Check(%q) = %q, want valid", c.name, got)
		case c.why != "" && !strings.Contains(got, c.why):
			t.Errorf("Check(%q) = %q, want a reason containing %q", c.name, got, c.why)
		}
		if c.why != "" && Valid(c.name) {
			t.Errorf("Valid(%q) = true", c.name)
		}
	}
}

// TestCheckAllBytes: every single byte outside printable ASCII, and every forbidden character, is refused in any
// position; every other printable character is accepted in the middle of a name.
func TestCheckAllBytes(t *testing.T) {
	for b := 0; b < 256; b++ {
		name := "a" + string([]byte{byte(b)}) + "b"
		printable := b > 0x20 && b < 0x7f
		_, bad := forbidden[byte(b)]
		if b >= '0' && b <= '9' {
			name = "0" + string([]byte{byte(b)}) // a number
			bad = true
		}
		if got := Valid(name); got != (printable && !bad) {
			t.Errorf("Valid(%q) = %v", name, got)
		}
	}
}

func TestSysctlKey(t *testing.T) {
	for name, want := range map[string]string{
		"eth0":      "net.ipv4.conf.eth0.rp_filter",
		"bond0.100": "net/ipv4/conf/bond0.100/rp_filter",
	} {
		if got := SysctlKey(name, "rp_filter"); got != want {
			t.Errorf("SysctlKey(%q) = %q, want %q", name, got, want)
		}
	}
}
