package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/orchestration/apply"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// fakeEngine is the apply engine's try as settle sees it: what Apply returns, and which of Confirm and
// RollbackPending settle called.
type fakeEngine struct {
	out                   apply.Outcome
	err                   error
	confirmErr            error
	confirmed, rolledBack []string
	reason                string
	rec                   record.Record
}

func (f *fakeEngine) Apply(ctx context.Context, req apply.Request) (apply.Outcome, error) {
	if req.Op != record.OpTry || req.Deadline.IsZero() {
		return apply.Outcome{}, errors.New("not a try with a deadline")
	}
	if f.err == nil && f.out.Verified {
		f.rec.Pending = &record.Transaction{ID: "t1", Op: record.OpTry, Verified: true}
	}
	return f.out, f.err
}

func (f *fakeEngine) Confirm(id string) (*record.Process, error) {
	if f.confirmErr != nil {
		return nil, f.confirmErr
	}
	f.confirmed = append(f.confirmed, id)
	f.rec.Pending = nil
	return nil, nil
}

func (f *fakeEngine) RollbackPending(ctx context.Context, id, reason string) (apply.Outcome, error) {
	if ctx.Err() != nil {
		return apply.Outcome{}, ctx.Err()
	}
	f.rolledBack, f.reason = append(f.rolledBack, id), reason
	f.rec.Pending = nil
	return apply.Outcome{RolledBack: true, PreviousChecked: true, PreviousBack: true}, nil
}

func (f *fakeEngine) Record() *record.Record { return &f.rec }

func try() apply.Request {
	return apply.Request{Op: record.OpTry, Deadline: time.Now().Add(time.Minute)}
}

func passes(name string) check {
	return check{name, func(context.Context) error { return nil }}
}

func fails(name, why string) check {
	return check{name, func(context.Context) error { return errors.New(why) }}
}

var finding = drift.Finding{Interface: "eth-a", Message: "rule 20010: from 192.0.2.10 lookup 1000000 is missing"}

func verified() apply.Outcome {
	var out apply.Outcome
	out.Verified = true
	return out
}

func TestSettleConfirmsWhenEveryCheckPasses(t *testing.T) {
	e := &fakeEngine{out: verified()}
	out, err := settle(context.Background(), e, try(), []check{passes("gateway"), passes("the API server")})
	if err != nil || !out.Verified || len(e.confirmed) != 1 || len(e.rolledBack) != 0 {
		t.Fatalf("err %v, outcome %+v, confirmed %v, rolled back %v", err, out, e.confirmed, e.rolledBack)
	}
}

func TestSettleRollsBackWhenACheckFails(t *testing.T) {
	for _, c := range []struct {
		name   string
		checks []check
		want   string
	}{
		{"gateway", []check{fails("eth-a's gateway 192.0.2.1", "no echo reply"), passes("the API server")}, "eth-a's gateway 192.0.2.1: no echo reply"},
		{"api", []check{passes("eth-a's gateway"), fails("the API server", "connection refused")}, "the API server: connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &fakeEngine{out: verified()}
			out, err := settle(context.Background(), e, try(), c.checks)
			if err != nil || out.Verified || len(e.confirmed) != 0 || len(e.rolledBack) != 1 {
				t.Fatalf("err %v, outcome %+v, confirmed %v, rolled back %v", err, out, e.confirmed, e.rolledBack)
			}
			if !strings.Contains(e.reason, c.want) || !strings.Contains(out.Message, c.want) || !strings.Contains(out.Message, "rolled back and checked") {
				t.Fatalf("reason %q, message %q: want %q and the rollback named", e.reason, out.Message, c.want)
			}
		})
	}
}

// A check that hangs ends at the try's deadline, and the try rolls back then, not at the engine's watcher.
func TestSettleChecksEndAtTheDeadline(t *testing.T) {
	e := &fakeEngine{out: verified()}
	req := try()
	req.Deadline = time.Now().Add(100 * time.Millisecond)
	hangs := check{"the API server", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	start := time.Now()
	out, err := settle(context.Background(), e, req, []check{hangs})
	if err != nil || out.Verified || len(e.rolledBack) != 1 || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v, outcome %+v, rolled back %v after %v", err, out, e.rolledBack, time.Since(start))
	}
}

// The agent being stopped mid-check still rolls back to the end: the rollback runs in a context of its own.
func TestSettleRollsBackWhenCancelled(t *testing.T) {
	e := &fakeEngine{out: verified()}
	ctx, cancel := context.WithCancel(context.Background())
	stops := check{"the API server", func(context.Context) error { cancel(); return context.Canceled }}
	out, err := settle(ctx, e, try(), []check{stops})
	if err != nil || out.Verified || len(e.rolledBack) != 1 {
		t.Fatalf("err %v, outcome %+v, rolled back %v", err, out, e.rolledBack)
	}
}

func TestSettleRollsBackWhenConfirmFails(t *testing.T) {
	e := &fakeEngine{out: verified(), confirmErr: errors.New("write the record: disk full")}
	out, err := settle(context.Background(), e, try(), []check{passes("the API server")})
	if err != nil || out.Verified || len(e.rolledBack) != 1 || !strings.Contains(out.Message, "disk full") {
		t.Fatalf("err %v, outcome %+v, rolled back %v", err, out, e.rolledBack)
	}
}

// A try that did not verify was rolled back by the engine: no check runs, nothing is confirmed or rolled back
// again, and verify's findings are the outcome's.
func TestSettleReportsTheEnginesRollback(t *testing.T) {
	var failed apply.Outcome
	failed.RolledBack, failed.PreviousChecked, failed.PreviousBack = true, true, true
	failed.Result.Findings = []drift.Finding{finding}
	for _, c := range []struct {
		name string
		out  apply.Outcome
		err  error
		want string
	}{
		{"verification", failed, nil, "verification failed; rolled back and checked"},
		{"refused", apply.Outcome{}, apply.ErrRefused, apply.ErrRefused.Error()},
		{"failed", failed, errors.New("networkd: link eth-b failed"), "networkd: link eth-b failed; rolled back and checked"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &fakeEngine{out: c.out, err: c.err}
			ran := false
			out, err := settle(context.Background(), e, try(), []check{{"the API server", func(context.Context) error { ran = true; return nil }}})
			if err != nil || out.Verified || ran || len(e.confirmed)+len(e.rolledBack) != 0 || !strings.Contains(out.Message, c.want) {
				t.Fatalf("err %v, outcome %+v, checks ran %v, confirmed %v, rolled back %v", err, out, ran, e.confirmed, e.rolledBack)
			}
			if len(c.out.Result.Findings) > 0 && len(out.Findings) != 1 {
				t.Fatalf("findings %v, want verify's", out.Findings)
			}
		})
	}
	// An error the engine could not roll back from is the agent's error: how the node ended is unknown.
	e := &fakeEngine{err: errors.New("write the record: read-only file system")}
	if _, err := settle(context.Background(), e, try(), nil); err == nil {
		t.Fatal("no error for an apply that could not say how it ended")
	}
}

// Every interface with a gateway and an address of its family gets a check, from that address; a DHCP
// interface's gateway has no address to send from in the description, and the API server is always checked.
func TestChecks(t *testing.T) {
	p := &plan.Plan{Interfaces: []plan.Interface{
		{Interface: description.Interface{Name: "eth-a", Addresses: []netip.Prefix{netip.MustParsePrefix("2001:db8::10/64"), netip.MustParsePrefix("192.0.2.10/24")},
			Gateway: netip.MustParseAddr("192.0.2.1"), Gateway6: netip.MustParseAddr("fe80::1")}},
		{Interface: description.Interface{Name: "eth-b", Gateway: netip.MustParseAddr("198.51.100.1")}},
	}}
	var asked []string
	m := &Machine{
		Gateway: func(_ context.Context, link string, from, gw netip.Addr) error {
			asked = append(asked, link+" "+from.String()+" "+gw.String())
			return nil
		},
		APIReachable: func(context.Context) error { asked = append(asked, "api"); return nil },
	}
	for _, c := range m.checks(p, nil) {
		if err := c.run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want := "eth-a 192.0.2.10 192.0.2.1, eth-a 2001:db8::10 fe80::1, api"
	if got := strings.Join(asked, ", "); got != want {
		t.Fatalf("checked %s, want %s", got, want)
	}
	// A policy's skipGateways leaves the interface's gateways out, never the API server.
	asked = nil
	for _, c := range m.checks(p, []string{"eth-a"}) {
		if err := c.run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(asked, ", "); got != "api" {
		t.Fatalf("with eth-a's gateways skipped, checked %s", got)
	}
	// Without a check of the API server, nothing is confirmed.
	if err := (&Machine{}).checks(&plan.Plan{}, nil)[0].run(context.Background()); err == nil {
		t.Fatal("a Machine without APIReachable passes its checks")
	}
}

func TestPingGatewayLoopback(t *testing.T) {
	testenv.Root(t, "a raw ICMP socket needs root")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range []string{"127.0.0.1", "::1"} {
		addr := netip.MustParseAddr(a)
		if err := PingGateway(ctx, "lo", addr, addr); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	// An address that does not answer is an error, within the context.
	short, stop := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer stop()
	if err := PingGateway(short, "lo", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.0.2.77")); err == nil {
		t.Error("192.0.2.77 answered")
	}
}

// A silent gateway fails alone: the checks run side by side, so the API server's check, which answers, is not
// starved of the deadline the gateway's spends, and the reason names only the gateway.
func TestSettleNamesOnlyTheCheckThatHangs(t *testing.T) {
	e := &fakeEngine{out: verified()}
	req := try()
	req.Deadline = time.Now().Add(200 * time.Millisecond)
	silent := check{"eth-b's gateway 10.0.0.254", func(ctx context.Context) error { <-ctx.Done(); return errors.New("no echo reply") }}
	answers := check{"the API server", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // answers, after a while
			return nil
		}
	}}
	out, err := settle(context.Background(), e, req, []check{silent, answers})
	if err != nil || out.Verified || len(e.rolledBack) != 1 {
		t.Fatalf("err %v, outcome %+v, rolled back %v", err, out, e.rolledBack)
	}
	if !strings.Contains(e.reason, "eth-b's gateway 10.0.0.254: no echo reply") || strings.Contains(e.reason, "the API server") {
		t.Errorf("reason %q: want the gateway named, and the API server not", e.reason)
	}
}

func TestRetryingPassesOnALaterAttemptAndFailsWithTheLastError(t *testing.T) {
	tries := 0
	flaky := Retrying(func(context.Context) error {
		if tries++; tries < 3 {
			return fmt.Errorf("connection reset (attempt %d)", tries)
		}
		return nil
	})
	if err := flaky(context.Background()); err != nil || tries != 3 {
		t.Fatalf("err %v after %d tries, want a pass on the third", err, tries)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	tries = 0
	down := Retrying(func(context.Context) error { tries++; return fmt.Errorf("refused (attempt %d)", tries) })
	err := down(ctx)
	if err == nil || tries < 2 || !strings.Contains(err.Error(), fmt.Sprintf("attempt %d", tries)) {
		t.Fatalf("err %v after %d tries, want the last attempt's error", err, tries)
	}
}

// The first check to fail stops the others: the rollback does not wait for a silent gateway's deadline, and the
// check it stopped is not named.
func TestSettleStopsAtTheFirstFailure(t *testing.T) {
	e := &fakeEngine{out: verified()}
	req := try()
	req.Deadline = time.Now().Add(time.Minute)
	silent := check{"eth-b's gateway", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	start := time.Now()
	out, err := settle(context.Background(), e, req, []check{silent, fails("the API server", "connection refused")})
	if err != nil || out.Verified || len(e.rolledBack) != 1 || time.Since(start) > 10*time.Second {
		t.Fatalf("err %v, outcome %+v, rolled back %v after %v", err, out, e.rolledBack, time.Since(start))
	}
	if !strings.Contains(e.reason, "the API server: connection refused") || strings.Contains(e.reason, "eth-b") {
		t.Errorf("reason %q: want the API server alone", e.reason)
	}
}
