// Command benchverify measures what issue #3 asks of verify and apply, against iproute2 in the same run:
//
//   - symroute verify, and `ip rule show; ip route show table <each owned table>` (both families), with 0,
//     100,000 and 1,000,000 routes in main: verify must not slow down as main grows (BGP-fed nodes);
//   - symroute apply from start to verified, for 2 and 32 interfaces, on a fresh networkd each run.
//
// Every figure is the median of --runs wall-clock runs of the whole command, namespace entry included for both
// peers. Run it with bench/verify.sh (as root).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/symroute/symroute/internal/tools/nettest"
)

func main() {
	if code, ok := nettest.RunHelper(); ok {
		os.Exit(code)
	}
	bin := flag.String("symroute", "./symroute", "the symroute binary")
	runs := flag.Int("runs", 15, "runs per measurement (the median is reported)")
	sizes := flag.String("sizes", "0,100000,1000000", "routes in main, comma-separated")
	ifaces := flag.String("apply-interfaces", "2,32", "interface counts for the apply measurement")
	flag.Parse()
	p := &nettest.Program{Name: "benchverify"}
	abs, err := filepath.Abs(*bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(p.Run(func() {
		nettest.Require(p)
		benchVerify(p, abs, *runs, ints(p, *sizes))
		benchApply(p, abs, max(3, *runs/5), ints(p, *ifaces))
	}))
}

func ints(p *nettest.Program, csv string) []int {
	var out []int
	for _, f := range strings.Split(csv, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		p.Check(err)
		out = append(out, n)
	}
	return out
}

func tempRoot(p *nettest.Program) string {
	root, err := os.MkdirTemp("", "symroute-bench-")
	p.Check(err)
	p.Cleanup(func() { os.RemoveAll(root) })
	p.Check(os.Chmod(root, 0o755))
	return root
}

func writeDescription(p *nettest.Program, root, body string) string {
	desc := filepath.Join(root, "etc/symroute/host.yaml")
	p.Check(os.MkdirAll(filepath.Dir(desc), 0o755))
	p.Check(os.WriteFile(desc, []byte(body), 0o644))
	return desc
}

// median runs f runs times and returns the median of the durations it reports; f fails the program itself on
// error.
func median(runs int, f func() time.Duration) time.Duration {
	var ds []time.Duration
	for range runs {
		ds = append(ds, f())
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func benchVerify(p *nettest.Program, bin string, runs int, sizes []int) {
	root := tempRoot(p)
	site := nettest.NewSite(p, nettest.RunID(p), root, false)
	desc := writeDescription(p, root, nettest.Description("loose"))
	if code, out := site.Run(bin, "apply", "-c", desc, "--root", root); code != 0 {
		p.Fatalf("apply exited %d:\n%s", code, out)
	}
	// Both families, as verify reads them; iproute2 fails on a table absent in a family, which verify reads as empty.
	iproute := "ip rule show; ip route show table 1000000; ip route show table 1000001; ip -6 rule show; ip -6 route show table 1000000 2>/dev/null; ip -6 route show table 1000001 2>/dev/null; true"

	fmt.Printf("## verify as main grows (median of %d runs)\n\n", runs)
	fmt.Println("| routes in main | symroute verify | ip rule + ip route show table (owned) | verify / iproute2 | verify / verify at 0 |")
	fmt.Println("|---|---|---|---|---|")
	var base time.Duration
	added := 0
	for _, size := range sizes {
		added = addMainRoutes(p, site, added, size)
		verify := median(runs, func() time.Duration {
			start := time.Now()
			if code, out := site.Run(bin, "verify", "-c", desc, "--root", root); code != 0 {
				p.Fatalf("verify exited %d with %d routes in main:\n%s", code, size, out)
			}
			return time.Since(start)
		})
		ip := median(runs, func() time.Duration {
			start := time.Now()
			if code, out := site.Run("sh", "-c", iproute+" >/dev/null"); code != 0 {
				p.Fatalf("iproute2 exited %d: %s", code, out)
			}
			return time.Since(start)
		})
		if base == 0 {
			base = verify
		}
		fmt.Printf("| %d | %s | %s | %.2f | %.2f |\n", size, ms(verify), ms(ip), float64(verify)/float64(ip), float64(verify)/float64(base))
	}
	fmt.Println()
}

// addMainRoutes grows main from have to want /32 routes in 100.64.0.0/10, through one `ip -batch`.
func addMainRoutes(p *nettest.Program, site *nettest.Site, have, want int) int {
	if want <= have {
		return have
	}
	f, err := os.CreateTemp("", "symroute-bench-routes-")
	p.Check(err)
	p.Cleanup(func() { os.Remove(f.Name()) })
	base := uint32(100<<24 | 64<<16)
	for i := have; i < want; i++ {
		a := base + uint32(i)
		fmt.Fprintf(f, "route add %d.%d.%d.%d/32 via 192.168.1.1\n", a>>24, a>>16&0xff, a>>8&0xff, a&0xff)
	}
	p.Check(f.Close())
	site.Host.IP("-batch", f.Name())
	return want
}

func benchApply(p *nettest.Program, bin string, runs int, counts []int) {
	fmt.Printf("## apply, from start to verified, on a fresh networkd (median of %d runs)\n\n", runs)
	fmt.Println("| interfaces | symroute apply |")
	fmt.Println("|---|---|")
	for _, n := range counts {
		d := median(runs, func() time.Duration { return applyOnce(p, bin, n) })
		fmt.Printf("| %d | %s |\n", n, ms(d))
	}
}

// applyOnce times one apply; the namespace, links, bus and networkd are set up before the clock starts.
func applyOnce(p *nettest.Program, bin string, n int) time.Duration {
	ns := nettest.NewNetns(p, nettest.RunID(p), "apply")
	var b strings.Builder
	b.WriteString("version: 1\ninterfaces:\n")
	for i := range n {
		name := fmt.Sprintf("eth%d", i)
		ns.IP("link", "add", name, "type", "veth", "peer", "name", fmt.Sprintf("peer%d", i))
		ns.IP("link", "set", fmt.Sprintf("peer%d", i), "up")
		fmt.Fprintf(&b, "  - name: %s\n    addresses: [10.%d.0.1/24]\n    gateway: 10.%d.0.254\n", name, i, i)
	}
	root := tempRoot(p)
	desc := writeDescription(p, root, b.String())
	bus := nettest.StartBus(p)
	nd := nettest.StartNetworkd(p, ns, bus, root)
	nd.WaitReady(p)
	start := time.Now()
	if code, out := nettest.RunIn(p, ns, bus, bin, "apply", "-c", desc, "--root", root); code != 0 {
		p.Fatalf("apply of %d interfaces exited %d:\n%s", n, code, out)
	}
	return time.Since(start)
}
