package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/recordstore"
	"github.com/symroute/symroute/internal/tools/nettest"
)

// background runs symroute in the host's namespace without waiting; lines delivers its output line by line.
func (s *site) background(args ...string) (cmd *exec.Cmd, lines <-chan string) {
	s.t.Helper()
	cmd = s.command(args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ch := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return cmd, ch
}

// command is symroute with args on the site's host, its root and its bus, not started.
func (s *site) command(args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", s.Host.Name, s.bin}, append(args, "--root", s.Root)...)...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+s.Bus.Address)
	return cmd
}

// ownProcess kills p when the test ends, if it still runs as the same process: a try's watcher is started by
// the test's symroute, and a failed test must not leave it to roll back later.
func (s *site) ownProcess(p record.Process) {
	s.t.Cleanup(func() {
		if startOf(p.PID) == p.Start {
			syscall.Kill(p.PID, syscall.SIGKILL)
		}
	})
}

// startOf reads a process's start time, as symroute records it; 0 when it is gone.
func startOf(pid int) uint64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(fields[19], 10, 64)
	return v
}

// waitLine reads lines until one contains want, and returns everything read.
func waitLine(t *testing.T, lines <-chan string, want string, limit time.Duration) string {
	t.Helper()
	var seen strings.Builder
	deadline := time.After(limit)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before %q:\n%s", want, seen.String())
			}
			seen.WriteString(l + "\n")
			if strings.Contains(l, want) {
				return seen.String()
			}
		case <-deadline:
			t.Fatalf("no %q within %v:\n%s", want, limit, seen.String())
		}
	}
}

func drain(lines <-chan string) string {
	var b strings.Builder
	for l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// loadRecord reads the site's record.
func (s *site) loadRecord() record.Record {
	s.t.Helper()
	var rec record.Record
	data, err := os.ReadFile(filepath.Join(s.Root, recordstore.Dir, recordstore.Name))
	if err == nil {
		err = json.Unmarshal(data, &rec)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return rec
}

// waitGone waits until pid has exited, and kills it if it has not within limit (a try's watcher is the test's
// own process, started by the symroute it ran).
func waitGone(t *testing.T, pid int, limit time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("process %d did not exit within %v", pid, limit)
}

// TestAddressChangeUnderAnOpenSession: with a TCP connection open on eth-a's address, apply refuses to move the
// address and changes nothing; try moves it and, unconfirmed, rolls back by itself after its timeout even
// though the session that ran it is gone; confirmed from another session, the change stays.
func TestAddressChangeUnderAnOpenSession(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	stop := s.Client.Hold(t, hostA+":"+echoPort)
	defer stop()
	// The echo server's socket is dual-stack: ss shows the address v4-mapped.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(s.Host.Exec("ss", "-tnH", "state", "established"), hostA+"]:"+echoPort); {
		if time.Now().After(deadline) {
			t.Fatal("the session never got established")
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := s.tree("etc/systemd")
	moved := s.describe("moved.yaml", strings.Replace(twoNICDescription("loose"), hostA+"/24", "192.168.1.11/24", 1))

	out := s.mustSymroute(1, "apply", "-c", moved)
	for _, want := range []string{"will remove address 192.168.1.10/24 from eth-a", "connection " + hostA + ":" + echoPort + " -> " + nettest.ClientIP, "nothing was changed", "symroute try"} {
		if !strings.Contains(out, want) {
			t.Errorf("refused apply lacks %q:\n%s", want, out)
		}
	}
	if after := s.tree("etc/systemd"); len(after) != len(before) || string(after["network/10-symroute-eth-a.network"]) != string(before["network/10-symroute-eth-a.network"]) {
		t.Fatal("the refused apply changed the files")
	}

	// try, never confirmed; the process that ran it is killed (the session cut off) before the deadline. The
	// try verifies in about 0.1 s here: its deadline must leave it ample time on a slow machine, since the
	// watcher rolls back at the deadline whatever state the try is in.
	cmd, lines := s.background("try", "-c", moved, "--timeout", "8s")
	waitLine(t, lines, "Otherwise it is rolled back", 30*time.Second)
	if got := s.Host.IP("-o", "-4", "addr", "show", "dev", "eth-a"); !strings.Contains(got, "192.168.1.11/24") {
		t.Fatalf("try did not move the address: %s", got)
	}
	watcher := s.loadRecord().Pending.Watcher
	if watcher == nil {
		t.Fatal("no watcher recorded for the try")
	}
	s.ownProcess(*watcher)
	cmd.Process.Kill()
	waitGone(t, watcher.PID, 30*time.Second)
	if rec := s.loadRecord(); rec.Pending != nil {
		t.Fatalf("the try is still pending after its watcher ended")
	}
	if got := s.Host.IP("-o", "-4", "addr", "show", "dev", "eth-a"); !strings.Contains(got, hostA+"/24") || strings.Contains(got, "192.168.1.11") {
		t.Fatalf("the unconfirmed try was not rolled back: %s", got)
	}
	s.mustSymroute(0, "verify", "-c", desc)
	s.expectClient(true, "after the unconfirmed try rolled back")

	// try, confirmed from another session.
	cmd, lines = s.background("try", "-c", moved, "--timeout", "60s")
	waitLine(t, lines, "Otherwise it is rolled back", 30*time.Second)
	watcher = s.loadRecord().Pending.Watcher
	s.ownProcess(*watcher)
	s.mustSymroute(0, "confirm")
	rest := drain(lines)
	if err := cmd.Wait(); err != nil || !strings.Contains(rest, "confirmed") {
		t.Fatalf("try after confirm: %v\n%s", err, rest)
	}
	waitGone(t, watcher.PID, 30*time.Second)
	s.mustSymroute(0, "verify", "-c", moved)
	if got := s.Host.IP("-o", "-4", "addr", "show", "dev", "eth-a"); !strings.Contains(got, "192.168.1.11/24") {
		t.Fatalf("the confirmed change is gone: %s", got)
	}
}

// TestSIGTERMMidApplyRollsBack: SIGTERM while apply waits for networkd (stopped, so the reload hangs after the
// files are written) rolls back: the files and the state are as before.
func TestSIGTERMMidApplyRollsBack(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	before := s.tree("etc/systemd")
	more := s.describe("more.yaml", strings.Replace(twoNICDescription("loose"), hostA+"/24", hostA+"/24, 192.168.1.20/24", 1))

	networkd := s.Networkd.Pid()
	syscall.Kill(networkd, syscall.SIGSTOP)
	cmd, lines := s.background("apply", "-c", more, "--timeout", "60s")
	seen := waitLine(t, lines, "update /etc/systemd/network/10-symroute-eth-a.network", 30*time.Second)
	// Most likely the reload is sent by now, and networkd does not answer it; a SIGTERM before the reload
	// interrupts the run all the same, so this pause steers the scenario and decides nothing.
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	// The run turns to its rollback while networkd is still stopped (the signal, not networkd, ended its wait)
	// and puts the files back; networkd resumes on the files as they were, the rollback's reload waiting.
	seen += waitLine(t, lines, "put back /etc/systemd/network/10-symroute-eth-a.network as it was", 30*time.Second)
	syscall.Kill(networkd, syscall.SIGCONT)
	rest := seen + drain(lines)
	err := cmd.Wait()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 || !strings.Contains(rest, "interrupted") || !strings.Contains(rest, "rolling back") {
		t.Fatalf("apply after SIGTERM: %v\n%s", err, rest)
	}
	after := s.tree("etc/systemd")
	if len(after) != len(before) {
		t.Errorf("files after the rollback: %v", keys(after))
	}
	for p, data := range before {
		if string(after[p]) != string(data) {
			t.Errorf("%s differs after the rollback", p)
		}
	}
	if s.loadRecord().Pending != nil {
		t.Error("the record is still pending")
	}
	s.mustSymroute(0, "verify", "-c", desc)
	s.expectClient(true, "after the interrupted apply")
}

// TestKilledBetweenWritesAndReloadConverges: apply dies right after renaming its files into place, before networkd
// hears of them (the test build's SYMROUTE_FAULT kills it there, as a power cut or the OOM killer would):
// networkd still runs the old configuration and the record is pending. The next apply undoes the dead run, then
// applies and verifies. Before the record, every later apply said "no file changed" and networkd kept the old
// files.
func TestKilledBetweenWritesAndReloadConverges(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	before := s.tree("etc/systemd")
	changed := s.describe("host.yaml", strings.Replace(twoNICDescription("loose"), hostA+"/24", hostA+"/24, 192.168.1.20/24", 1))

	cmd := s.command("apply", "-c", changed)
	cmd.Env = append(cmd.Env, "SYMROUTE_FAULT=die-after-write")
	out, err := cmd.CombinedOutput()
	if exit, ok := err.(*exec.ExitError); !ok || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL && exit.ExitCode() != 137 {
		t.Fatalf("apply was not killed after its writes: %v\n%s", err, out)
	}
	if s.loadRecord().Pending == nil {
		t.Fatal("the killed run left no pending record")
	}
	if after := s.tree("etc/systemd"); string(after["network/10-symroute-eth-a.network"]) == string(before["network/10-symroute-eth-a.network"]) {
		t.Fatal("the run died before writing eth-a's file; the scenario needs it written")
	}
	time.Sleep(300 * time.Millisecond)
	if addrs := s.Host.IP("-o", "-4", "addr", "show", "dev", "eth-a"); strings.Contains(addrs, "192.168.1.20") {
		t.Fatalf("networkd took the files up, though nobody asked it to: %s", addrs)
	}
	got := s.mustSymroute(0, "apply", "-c", changed)
	if !strings.Contains(got, "did not finish; undoing it first") || !strings.Contains(got, "symroute verify: ok") {
		t.Errorf("apply after the killed run:\n%s", got)
	}
	if !strings.Contains(s.Host.IP("rule"), "from 192.168.1.20 lookup") {
		t.Errorf("the change is not in place:\n%s", s.Host.IP("rule"))
	}
}

// TestTryRollsBackWhenItsSessionEnds: a try rolls back at once, long before its deadline, when the terminal closes
// (SIGHUP to try), when its watcher is told to stop while the try is pending (a shutdown, logind ending the
// session), and when try is killed before the change verified; after a reboot with a try pending, recover
// --offline puts the files back before networkd starts.
func TestTryRollsBackWhenItsSessionEnds(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	before := s.tree("etc")
	moved := s.describe("moved.yaml", strings.Replace(twoNICDescription("loose"), hostA+"/24", "192.168.1.11/24", 1))
	restored := func(when string) {
		t.Helper()
		if s.loadRecord().Pending != nil {
			t.Fatalf("%s: the try is still pending", when)
		}
		after := s.tree("etc")
		for p, data := range before {
			if string(after[p]) != string(data) {
				t.Fatalf("%s: %s differs from before the try", when, p)
			}
		}
		s.mustSymroute(0, "verify", "-c", desc)
	}
	startTry := func() (*exec.Cmd, <-chan string, record.Process) {
		t.Helper()
		cmd, lines := s.background("try", "-c", moved, "--timeout", "120s")
		waitLine(t, lines, "Otherwise it is rolled back", 30*time.Second)
		w := s.loadRecord().Pending.Watcher
		if w == nil {
			t.Fatal("no watcher recorded")
		}
		s.ownProcess(*w)
		return cmd, lines, *w
	}
	fast := 20 * time.Second // against a deadline of 120 s

	// The terminal closes.
	cmd, lines, w := startTry()
	cmd.Process.Signal(syscall.SIGHUP)
	rest := drain(lines)
	if err := cmd.Wait(); err == nil || !strings.Contains(rest, "rolling back") {
		t.Fatalf("try after SIGHUP: %v\n%s", err, rest)
	}
	waitGone(t, w.PID, fast)
	restored("after SIGHUP")

	// The watcher is told to stop: a shutdown, or the end of the login session.
	cmd, _, w = startTry()
	syscall.Kill(w.PID, syscall.SIGTERM)
	waitGone(t, w.PID, fast)
	cmd.Wait()
	restored("after SIGTERM to the watcher")

	// try is killed before the change verified (networkd is stopped, so try waits on its reload).
	networkd := s.Networkd.Pid()
	syscall.Kill(networkd, syscall.SIGSTOP)
	cmd, lines = s.background("try", "-c", moved, "--timeout", "120s")
	waitLine(t, lines, "update /etc/systemd/network/10-symroute-eth-a.network", 30*time.Second)
	wp := s.loadRecord().Pending.Watcher
	if wp == nil {
		t.Fatal("the try changed a file before its watcher was recorded")
	}
	s.ownProcess(*wp)
	cmd.Process.Kill()
	cmd.Wait()
	syscall.Kill(networkd, syscall.SIGCONT)
	waitGone(t, wp.PID, fast)
	restored("after try was killed before verifying")

	// A reboot with a try pending: its processes are gone, and networkd is not running when the boot unit runs.
	cmd, _, w = startTry()
	cmd.Process.Kill()
	cmd.Wait()
	syscall.Kill(w.PID, syscall.SIGKILL)
	waitGone(t, w.PID, fast)
	if s.loadRecord().Pending == nil {
		t.Fatal("the try is not pending after its processes died")
	}
	s.Networkd.Stop()
	out := s.mustSymroute(0, "recover", "--offline")
	if !strings.Contains(out, "undoing it before networkd starts") {
		t.Errorf("recover --offline:\n%s", out)
	}
	if s.loadRecord().Pending != nil {
		t.Fatal("recover --offline left the try pending")
	}
	// A new boot's kernel holds nothing networkd made (networkd 252 also cannot start on some of what it made:
	// see restartHazards).
	for _, link := range []string{"eth-a", "eth-b"} {
		s.Host.IP("-4", "addr", "flush", "dev", link)
	}
	for _, line := range strings.Split(s.Host.IP("rule"), "\n") {
		if pref, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(pref, "200") {
			s.Host.IP("rule", "del", "pref", pref)
		}
	}
	s.Networkd = nettest.StartNetworkd(t, s.Host, s.Bus, s.Root)
	s.Networkd.WaitReady(t)
	s.Networkd.WaitConfigured(t, s.Host, 30*time.Second, "eth-a", "eth-b")
	restored("after recover --offline and networkd's start")
}

// TestAdministratorsRuleInAGap: a rule of the administrator's between symroute's priorities, made to look like
// networkd's (proto static), survives apply and remove, and verify notes it without failing.
//
// networkd itself deletes rules it did not configure whenever it reconfigures a link, unless told not to: the
// description declares a component, so symroute writes that drop-in, and only symroute's own behaviour is tested.
func TestAdministratorsRuleInAGap(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	withDocker := func(body string) string {
		return strings.Replace(body, "version: 1\n", "version: 1\ncni: [docker]\n", 1)
	}
	desc := s.describe("host.yaml", withDocker(twoNICDescription("loose")))
	s.mustSymroute(0, "apply", "-c", desc)
	s.Host.IP("rule", "add", "pref", "20015", "from", "10.9.9.9", "lookup", "77", "proto", "static")
	has := func() bool { return strings.Contains(s.Host.IP("rule"), "20015:\tfrom 10.9.9.9 lookup 77") }
	out := s.mustSymroute(0, "verify", "-c", desc)
	if !strings.Contains(out, "sits in priority_range") {
		t.Errorf("verify did not note the rule in the gap:\n%s", out)
	}
	s.mustSymroute(0, "apply", "-c", s.describe("host.yaml", withDocker(strings.Replace(twoNICDescription("loose"), "10.0.0.1/24", "10.0.0.1/24, 10.0.0.2/24", 1))))
	if !has() {
		t.Fatalf("apply deleted the administrator's rule:\n%s", s.Host.IP("rule"))
	}
	s.mustSymroute(0, "remove")
	if !has() {
		t.Fatalf("remove deleted the administrator's rule:\n%s", s.Host.IP("rule"))
	}
}

// TestRemoveLeavesTheHostAsBefore: on a host configured by hand, apply then remove leaves every rule, route,
// address and rp_filter value as before symroute; the only trace is each own .network file, released, which
// gives its link the addresses it had.
func TestRemoveLeavesTheHostAsBefore(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	// IPv4 and the rules are compared; IPv6 link-local addresses finish their duplicate address detection on
	// their own time, and networkd re-adds the hand-made default route as its own (proto static).
	state := func() string {
		rp := s.Host.Exec("sh", "-c", "grep -H . /proc/sys/net/ipv4/conf/*/rp_filter")
		routes := strings.ReplaceAll(s.Host.IP("-4", "route", "show", "table", "all"), " proto static", "")
		return s.Host.IP("rule") + "\n" + routes + "\n" + s.Host.IP("-4", "-o", "addr") + "\n" + rp
	}
	s.Host.Exec("sysctl", "-qw", "net.ipv4.conf.eth-a.rp_filter=1")
	before := state()
	desc := s.describe("host.yaml", twoNICDescription("loose"))
	s.mustSymroute(0, "apply", "-c", desc)
	if state() == before {
		t.Fatal("apply changed nothing; the test proves nothing")
	}
	out := s.mustSymroute(0, "remove")
	if !strings.Contains(out, "kept eth-a's own .network file") {
		t.Errorf("remove did not say what it kept:\n%s", out)
	}
	if after := state(); after != before {
		t.Errorf("the host differs from before symroute:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	tree := s.tree("")
	for p, data := range tree {
		if strings.Contains(p, "symroute") && p != "etc/symroute/host.yaml" && !strings.HasPrefix(p, recordstore.Dir) && !strings.Contains(string(data), "Released by") {
			t.Errorf("remove left %s", p)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
