package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/symroute/symroute/internal/core/explain"
	"github.com/symroute/symroute/internal/tools/nettest"
)

// replyCounters counts, in the host, a server's packets to the client by the interface they leave by: where a
// real reply goes, for explain's prediction to be held to. Each check has a port of its own, so the SYN-ACKs an
// earlier check's failed connection still retransmits count nowhere.
const replyCounters = `table inet replies {
	counter eth-a-%[2]s { }
	counter eth-b-%[2]s { }
	chain out {
		type filter hook postrouting priority 0; policy accept;
		ip daddr %[1]s tcp sport %[2]s oifname "eth-a" counter name "eth-a-%[2]s"
		ip daddr %[1]s tcp sport %[2]s oifname "eth-b" counter name "eth-b-%[2]s"
	}
}
`

// explainJSON runs symroute explain in the host namespace and decodes its answer; want is the exit status.
func (s *site) explainJSON(want int, args ...string) explain.Result {
	s.t.Helper()
	code, out := s.Run(s.bin, append([]string{"explain", "-o", "json"}, args...)...)
	if code != want {
		s.t.Fatalf("symroute explain %s exited %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
	}
	var res explain.Result
	// The decoder takes the JSON document; a note symroute prints on standard error comes after it.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&res); err != nil {
		s.t.Fatalf("explain -o json: %v\n%s", err, out)
	}
	return res
}

// replyLeftBy serves port on the host, makes a real connection from the client to the host's first-NIC address
// on it, and returns the interface the host's replies left by (the one whose counter counted them), and whether
// the connection worked.
func (s *site) replyLeftBy(port string) (string, bool) {
	s.t.Helper()
	file := filepath.Join(s.t.TempDir(), "replies.nft")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(replyCounters, nettest.ClientIP, port)), 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.Host.Exec("nft", "-f", file)
	s.Host.Serve(s.t, "0.0.0.0:"+port)
	err := s.Client.Echo(hostA+":"+port, "")
	da, db := s.Host.Counter("inet", "replies", "eth-a-"+port), s.Host.Counter("inet", "replies", "eth-b-"+port)
	switch {
	case da > 0 && db == 0:
		return "eth-a", err == nil
	case db > 0 && da == 0:
		return "eth-b", err == nil
	case da == 0 && db == 0:
		return "", err == nil
	}
	s.t.Fatalf("the host's replies on port %s left by both eth-a (%d) and eth-b (%d)", port, da, db)
	return "", false
}

// TestExplainAgreesWithRealConnections: before apply, explain says the reply to the LAN client leaves by eth-b
// though the request came in on eth-a, names the fix, and a real connection's replies do leave by eth-b and the
// connection fails; under strict rp_filter without policy routing it predicts the drop, and the kernel counts
// one; after apply it says symmetric, through symroute's rule, table and gateway, and the real replies leave by
// eth-a and the connection works.
func TestExplainAgreesWithRealConnections(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	ask := []string{"--client", nettest.ClientIP, "--to", hostA, "--port", echoPort, "-c", desc}

	before := s.explainJSON(1, ask...)
	_, text := s.Run(s.bin, append([]string{"explain"}, ask...)...)
	t.Logf("before apply:\n%s", text)
	if before.Request.Interface != "eth-a" || before.Request.RPFilter != "accept" || before.Reply.Interface != "eth-b" || before.Symmetric {
		t.Errorf("before apply: %+v", before)
	}
	if before.Reply.Rule == nil || before.Reply.Rule.Priority != 32766 || before.Reply.Table != 254 {
		t.Errorf("before apply, the reply's rule and table: %+v", before.Reply)
	}
	if !strings.Contains(before.Fix, "symroute apply") || !strings.Contains(before.Fix, "line") {
		t.Errorf("before apply, the fix does not name the description's line and apply: %q", before.Fix)
	}
	if left, worked := s.replyLeftBy("8081"); left != before.Reply.Interface || worked {
		t.Errorf("before apply, a real connection's replies left by %q (worked: %v); explain said %s", left, worked, before.Reply.Interface)
	}

	// Strict rp_filter on eth-a, and no policy routing: the reverse lookup of the client leaves by eth-b.
	s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.eth-a.rp_filter=1")
	strict := s.explainJSON(1, ask...)
	if strict.Request.RPFilter != "drop" || strict.Request.RPFilterMode != "strict" || strict.Request.ReverseInterface != "eth-b" {
		t.Errorf("under strict rp_filter: %+v", strict.Request)
	}
	drops := s.Host.NetStat("TcpExt", "IPReversePathFilter")
	if left, worked := s.replyLeftBy("8082"); left != "" || worked {
		t.Errorf("under strict rp_filter, a real connection got replies by %q (worked: %v); explain predicted a drop", left, worked)
	}
	if s.Host.NetStat("TcpExt", "IPReversePathFilter") == drops {
		t.Errorf("under strict rp_filter the kernel counted no reverse-path drop; explain predicted one")
	}

	s.mustSymroute(0, "apply", "-c", desc)
	after := s.explainJSON(0, ask...)
	if !after.Symmetric || after.Reply.Interface != "eth-a" || after.Reply.Gateway != "192.168.1.1" || after.Reply.Table != 1000000 ||
		after.Reply.TableName != "symroute-eth-a" || after.Reply.Rule == nil || after.Reply.Rule.Priority != 20010 || !after.Reply.Rule.Symroute || after.Fix != "" {
		t.Errorf("after apply: %+v, rule %+v", after, after.Reply.Rule)
	}
	if left, worked := s.replyLeftBy("8083"); left != "eth-a" || !worked {
		t.Errorf("after apply, a real connection's replies left by %q (worked: %v); explain said eth-a", left, worked)
	}

	// The text view names the same, short enough for a ticket.
	code, out := s.Run(s.bin, append([]string{"explain"}, ask...)...)
	t.Logf("after apply:\n%s", out)
	if code != 0 || !strings.Contains(out, "rule 20010 (from 192.168.1.10)") || !strings.Contains(out, "leaves by eth-a via 192.168.1.1") || len(strings.Split(out, "\n")) > 10 {
		t.Errorf("explain's text (exit %d):\n%s", code, out)
	}
}
