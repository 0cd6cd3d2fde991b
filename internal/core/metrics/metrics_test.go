package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/core/drift"
)

func TestVerifyCountsFindingsByKindAndInterface(t *testing.T) {
	res := &drift.Result{
		Interfaces: []string{"eth-b", "eth-a"},
		Findings:   []drift.Finding{{Kind: drift.RuleMissing, Interface: "eth-a"}, {Kind: drift.RuleMissing, Interface: "eth-a"}},
	}
	var b strings.Builder
	Verify(&b, res, time.Unix(1700000000, 0))
	out := b.String()
	for _, want := range []string{
		"symroute_verify_success 0\n",
		"symroute_verify_read_error 0\n",
		"symroute_verify_last_run_timestamp_seconds 1700000000\n",
		`symroute_verify_findings{kind="rule_missing"} 2` + "\n",
		`symroute_verify_findings{kind="table_empty"} 0` + "\n",
		`symroute_verify_interface_ok{interface="eth-a"} 0` + "\n" + `symroute_verify_interface_ok{interface="eth-b"} 1` + "\n",
		"# TYPE symroute_verify_findings gauge\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestVerifyWithoutAResultSaysTheStateWasNotRead(t *testing.T) {
	var b strings.Builder
	Verify(&b, nil, time.Unix(5, 0))
	out := b.String()
	if !strings.Contains(out, "symroute_verify_read_error 1\n") || !strings.Contains(out, "symroute_verify_success 0\n") {
		t.Errorf("a failed read is not reported:\n%s", out)
	}
	if strings.Contains(out, "symroute_verify_findings") || strings.Contains(out, "interface_ok") {
		t.Errorf("findings reported for a state never read:\n%s", out)
	}
}

func TestVerifyOKResult(t *testing.T) {
	var b strings.Builder
	Verify(&b, &drift.Result{Interfaces: []string{"eth-a"}}, time.Unix(5, 0))
	if out := b.String(); !strings.Contains(out, "symroute_verify_success 1\n") || !strings.Contains(out, `symroute_verify_interface_ok{interface="eth-a"} 1`) {
		t.Errorf("a clean verify is not reported as one:\n%s", out)
	}
}
