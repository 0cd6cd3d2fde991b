package sysctlconf

import (
	"fmt"
	"strings"
	"testing"
)

func TestPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.conf.eth0.rp_filter":     "net/ipv4/conf/eth0/rp_filter",
		"net.ipv4.conf.eth0/1.rp_filter":   "net/ipv4/conf/eth0.1/rp_filter",
		"net/ipv4/conf/eth0.1/rp_filter":   "net/ipv4/conf/eth0.1/rp_filter",
		"net.ipv4.conf.all.rp_filter":      "net/ipv4/conf/all/rp_filter",
		"kernel.domainname":                "kernel/domainname",
		"net/ipv4/conf/eth0/1/rp_filter":   "net/ipv4/conf/eth0/1/rp_filter",
		"net.ipv6.conf.br.10/0.forwarding": "net/ipv6/conf/br/10.0/forwarding",
	} {
		if got := Path(key); got != want {
			t.Errorf("Path(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestParse keeps explicit assignments in order and drops comments, globs and lines that assign nothing; a long
// comment does not hide what follows it.
func TestParse(t *testing.T) {
	data := "# comment\n; also\n\nnet.ipv4.conf.all.rp_filter = 2\n-net.ipv4.conf.eth0.rp_filter=1\n" +
		"net.ipv4.conf.*.rp_filter = 2\nnot an assignment\n# " + strings.Repeat("x", 70000) + "\n kernel.x = a = b \n= 3\n"
	got := fmt.Sprint(Parse([]byte(data)))
	want := "[{net.ipv4.conf.all.rp_filter 2} {net.ipv4.conf.eth0.rp_filter 1} {kernel.x a = b}]"
	if got != want {
		t.Errorf("Parse = %s\nwant    %s", got, want)
	}
}
