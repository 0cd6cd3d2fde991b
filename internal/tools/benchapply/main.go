// Command benchapply measures what issue #8 asks of apply, with the real systemd-networkd in network namespaces,
// against networkd itself in the same run:
//
//   - apply-to-verified: the whole `symroute apply` command for a change of one link's file, against networkd's
//     own reload-to-configured for the same change (the files written beforehand, the clock from the Reload call
//     to the link's "configured" signal), at 2 and 16 links;
//   - disruption: packets lost by a flood ping (iputils ping -f) and the longest gap in a TCP stream, on the link
//     whose file changes and on one whose file does not, during symroute apply, during networkctl reload alone,
//     and during a reload that then reconfigures every link (what netplan apply does).
//
// Run it with bench/apply.sh (as root).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"

	"github.com/symroute/symroute/internal/edges/networkd"
	"github.com/symroute/symroute/internal/tools/nettest"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "stream-server" {
		os.Exit(streamServer(os.Args[2]))
	}
	if len(os.Args) > 3 && os.Args[1] == "stream-client" {
		os.Exit(streamClient(os.Args[2], os.Args[3]))
	}
	bin := flag.String("symroute", "./symroute", "the symroute binary")
	runs := flag.Int("runs", 11, "runs per measurement (the median is reported)")
	sizes := flag.String("links", "2,16", "link counts for apply-to-verified")
	flag.Parse()
	p := &nettest.Program{Name: "benchapply"}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(p.Run(func() {
		nettest.Require(p)
		var counts []int
		for _, f := range strings.Split(*sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			p.Check(err)
			counts = append(counts, n)
		}
		fmt.Printf("## apply-to-verified against networkd's reload-to-configured (median of %d runs)\n\n", *runs)
		fmt.Println("| links | symroute apply, whole process | networkd reload to configured | ratio |")
		fmt.Println("|---|---|---|---|")
		for _, n := range counts {
			h := newHost(p, abs, n)
			a := median(*runs, func() time.Duration { return h.toggle(p, h.applyTimed) })
			r := median(*runs, func() time.Duration { return h.toggle(p, h.reloadTimed) })
			fmt.Printf("| %d | %s | %s | %.2f |\n", n, ms(a), ms(r), float64(a)/float64(r))
		}
		fmt.Println()
		disruption(p, abs, *runs)
	}))
}

// host is N links in a host namespace, each a veth to a peer namespace, networkd configuring the host side from
// symroute's files; the peers are configured by hand.
type host struct {
	bin, root, desc string
	n               int
	ns, peer        *nettest.Netns
	bus             *nettest.Bus
	nd              *nettest.Networkd
	gw              int // the last octet of link 1's gateway, toggled between 254 and 253
}

func newHost(p *nettest.Program, bin string, n int) *host {
	id := nettest.RunID(p)
	h := &host{bin: bin, n: n, gw: 254, ns: nettest.NewNetns(p, id, "host"), peer: nettest.NewNetns(p, id, "peer")}
	root, err := os.MkdirTemp("", "symroute-bench-")
	p.Check(err)
	p.Cleanup(func() { os.RemoveAll(root) })
	p.Check(os.Chmod(root, 0o755))
	h.root = root
	for i := range n {
		h.ns.IP("link", "add", fmt.Sprintf("eth%d", i), "type", "veth", "peer", "name", fmt.Sprintf("p%d", i), "netns", h.peer.Name)
		h.ns.IP("link", "set", fmt.Sprintf("eth%d", i), "up")
		h.peer.IP("link", "set", fmt.Sprintf("p%d", i), "up")
		h.peer.IP("addr", "add", fmt.Sprintf("10.%d.0.2/24", i), "dev", fmt.Sprintf("p%d", i))
	}
	h.bus = nettest.StartBus(p)
	h.nd = nettest.StartNetworkd(p, h.ns, h.bus, root)
	h.nd.WaitReady(p)
	h.desc = filepath.Join(root, "etc/symroute/host.yaml")
	p.Check(os.MkdirAll(filepath.Dir(h.desc), 0o755))
	h.write(p)
	if code, out := nettest.RunIn(p, h.ns, h.bus, bin, "apply", "-c", h.desc, "--root", root); code != 0 {
		p.Fatalf("first apply exited %d:\n%s", code, out)
	}
	return h
}

// write writes the description: link 1's gateway is the one thing that changes between runs.
func (h *host) write(p *nettest.Program) {
	var b strings.Builder
	b.WriteString("version: 1\ninterfaces:\n")
	for i := range h.n {
		gw := 254
		if i == 1 {
			gw = h.gw
		}
		fmt.Fprintf(&b, "  - name: eth%d\n    addresses: [10.%d.0.1/24]\n    gateway: 10.%d.0.%d\n", i, i, i, gw)
	}
	p.Check(os.WriteFile(h.desc, []byte(b.String()), 0o644))
}

// toggle flips link 1's gateway in the description and times how the change is taken up.
func (h *host) toggle(p *nettest.Program, take func(*nettest.Program) time.Duration) time.Duration {
	h.gw = 507 - h.gw // 254 <-> 253
	h.write(p)
	return take(p)
}

// applyTimed times the whole symroute apply process, started in the host's namespace from a thread that entered
// it: `ip netns exec` would add its own start (about 6 ms here) to what is symroute's.
func (h *host) applyTimed(p *nettest.Program) time.Duration {
	cmd := exec.Command(h.bin, "apply", "-c", h.desc, "--root", h.root)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+h.bus.Address)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start, err := startIn(h.ns, cmd)
	p.Check(err)
	if err := cmd.Wait(); err != nil {
		p.Fatalf("apply: %v:\n%s", err, out.String())
	}
	return time.Since(start)
}

// startIn starts cmd inside ns: the forking thread enters the namespace, so the child is born in it. It returns
// the moment before the fork.
func startIn(ns *nettest.Netns, cmd *exec.Cmd) (time.Time, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return time.Time{}, err
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns.Name)
	if err != nil {
		return time.Time{}, err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return time.Time{}, err
	}
	defer netns.Set(orig)
	start := time.Now()
	return start, cmd.Start()
}

// reloadTimed writes the files with symroute generate (not timed), then times networkd alone: Reload, until link
// 1 announces it is configured again.
func (h *host) reloadTimed(p *nettest.Program) time.Duration {
	if code, out := nettest.RunIn(p, h.ns, h.bus, h.bin, "generate", "-c", h.desc, "--root", h.root); code != 0 {
		p.Fatalf("generate exited %d:\n%s", code, out)
	}
	client, err := networkd.Dial(context.Background(), h.bus.Address)
	p.Check(err)
	defer client.Close()
	events, stop, err := client.WatchLinks()
	p.Check(err)
	defer stop()
	index := h.index(p, "eth1")
	start := time.Now()
	p.Check(client.Reload(context.Background()))
	active := false
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Index != index {
				continue
			}
			if ev.State != "configured" {
				active = true
			} else if active {
				return time.Since(start)
			}
		case <-timeout:
			p.Fatalf("eth1 was not configured again within 30 s")
		}
	}
}

func (h *host) index(p *nettest.Program, name string) int {
	l, err := h.ns.Handle().LinkByName(name)
	p.Check(err)
	return l.Attrs().Index
}

// disruption measures loss on the changed link (eth1) and an unchanged one (eth0) during each way of taking a
// change up.
func disruption(p *nettest.Program, bin string, runs int) {
	if _, err := exec.LookPath("ping"); err != nil {
		p.Fatalf("the disruption benchmark needs iputils ping (apt-get install -y iputils-ping)")
	}
	h := newHost(p, bin, 2)
	self, err := os.Executable()
	p.Check(err)
	for i := range 2 {
		stopServer := h.ns.Background(p, fmt.Sprintf("exec %s stream-server 10.%d.0.1:9000", self, i))
		p.Cleanup(stopServer)
	}
	time.Sleep(300 * time.Millisecond)
	ways := []struct {
		name string
		take func(*nettest.Program) time.Duration
	}{
		{"symroute apply", h.applyTimed},
		{"networkctl reload", h.reloadTimed},
		{"reload, then reconfigure every link (netplan apply)", h.reloadReconfigureAll},
	}
	fmt.Printf("## disruption: flood ping loss and longest TCP gap while a change of eth1's file is taken up (worst of %d runs)\n\n", max(3, runs/3))
	fmt.Println("| how | eth0 (unchanged): ping lost | eth0: longest TCP gap | eth1 (changed): ping lost | eth1: longest TCP gap |")
	fmt.Println("|---|---|---|---|---|")
	for _, w := range ways {
		var lost [2]int
		var sent [2]int
		var gap [2]time.Duration
		for range max(3, runs/3) {
			l, s, g := h.disturbed(p, self, func() { h.toggle(p, w.take) })
			for i := range 2 {
				lost[i] = max(lost[i], l[i])
				sent[i] = s[i]
				gap[i] = max(gap[i], g[i])
			}
		}
		fmt.Printf("| %s | %d of %d | %s | %d of %d | %s |\n", w.name, lost[0], sent[0], ms(gap[0]), lost[1], sent[1], ms(gap[1]))
	}
}

// reloadReconfigureAll writes the files, then reloads and reconfigures every link, as netplan apply does.
func (h *host) reloadReconfigureAll(p *nettest.Program) time.Duration {
	d := h.reloadTimed(p)
	client, err := networkd.Dial(context.Background(), h.bus.Address)
	p.Check(err)
	defer client.Close()
	for i := range h.n {
		p.Check(client.ReconfigureLink(context.Background(), h.index(p, fmt.Sprintf("eth%d", i))))
	}
	time.Sleep(200 * time.Millisecond)
	return d
}

// disturbed runs a flood ping and a TCP stream to each link's host address from the peer while op runs, and
// returns the ping packets lost and sent, and the longest gap in each stream.
func (h *host) disturbed(p *nettest.Program, self string, op func()) (lost, sent [2]int, gap [2]time.Duration) {
	type result struct {
		out string
		err error
	}
	pings, streams := make([]chan result, 2), make([]chan result, 2)
	for i := range 2 {
		pings[i], streams[i] = make(chan result, 1), make(chan result, 1)
		go func() {
			out, err := h.peer.Try("ping", "-f", "-i", "0.002", "-c", "750", fmt.Sprintf("10.%d.0.1", i))
			pings[i] <- result{out, err}
		}()
		go func() {
			out, err := h.peer.Try(self, "stream-client", fmt.Sprintf("10.%d.0.1:9000", i), "1500ms")
			streams[i] <- result{out, err}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	op()
	counts := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	for i := range 2 {
		r := <-pings[i]
		m := counts.FindStringSubmatch(r.out)
		if m == nil {
			p.Fatalf("ping: %v\n%s", r.err, r.out)
		}
		s, _ := strconv.Atoi(m[1])
		got, _ := strconv.Atoi(m[2])
		lost[i], sent[i] = s-got, s
		r = <-streams[i]
		d, err := time.ParseDuration(strings.TrimSpace(r.out))
		if err != nil {
			p.Fatalf("stream: %v %v\n%s", r.err, err, r.out)
		}
		gap[i] = d
	}
	return lost, sent, gap
}

// streamServer sends one byte every millisecond to each connection.
func streamServer(addr string) int {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return 1
		}
		go func() {
			defer c.Close()
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for range t.C {
				if _, err := c.Write([]byte{'.'}); err != nil {
					return
				}
			}
		}()
	}
}

// streamClient reads the stream for a while and prints the longest gap between reads.
func streamClient(addr, forString string) int {
	d, err := time.ParseDuration(forString)
	if err != nil {
		return 2
	}
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer c.Close()
	r := bufio.NewReader(c)
	end := time.Now().Add(d)
	last, longest := time.Now(), time.Duration(0)
	buf := make([]byte, 64)
	for time.Now().Before(end) {
		c.SetReadDeadline(end)
		if _, err := r.Read(buf); err != nil && err != io.EOF {
			break
		}
		now := time.Now()
		longest = max(longest, now.Sub(last))
		last = now
	}
	stopped := time.Now()
	if stopped.After(end) {
		stopped = end
	}
	longest = max(longest, stopped.Sub(last))
	fmt.Println(longest)
	return 0
}

func median(runs int, f func() time.Duration) time.Duration {
	var ds []time.Duration
	for range runs {
		ds = append(ds, f())
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
