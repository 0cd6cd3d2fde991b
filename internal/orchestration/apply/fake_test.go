package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/core/sysctlconf"
	"github.com/symroute/symroute/internal/edges/networkd"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/edges/sockets"
)

// fakeOS stands in for the kernel, networkd, the systemd manager and /proc/sys, as tailscale's router tests fake
// their OS. Its networkd reads the files the engine writes under the root (with symroute's own emulation of
// networkd's file matching), and, like networkd 252, takes a reload up asynchronously: right after Reload returns,
// DescribeLink still reports the old state, and the link announces initialized, configuring, configured a moment
// later. Every call is written to a transcript, and any call can be made to fail.
type fakeOS struct {
	mu    sync.Mutex
	root  *rootfs.Root
	links map[string]int
	// kernel state
	rules  []routing.Rule
	routes []routing.Route
	addrs  map[int][]netip.Prefix
	// networkd state: what it configured on each link, and the link's administrative state
	applied map[int]generator.Effects
	// loaded is the configuration networkd read at its last reload or start, per link, with the file's name:
	// ReconfigureLink applies it again without reading the files.
	loaded      map[int]generator.Effects
	loadedFiles map[int]string
	states      map[int]string
	files       map[int]string
	keepForeign bool // networkd.conf.d's drop-in, as read at networkd's last start
	watchers    []chan networkd.LinkEvent
	lag         time.Duration
	// injected behaviour
	fail           map[string]error
	neverConfigure map[string]bool
	ignore         map[string]bool // links networkd never configures (verification fails)
	noManager      bool
	noBroadcast    map[string]bool // links whose addresses were added by hand without a broadcast
	version        int
	conns          []sockets.Conn
	sysctls        map[string]string
	transcript     []string
	onReload       func()
	running        map[record.Process]bool // processes alive, as Deps.Alive sees them (a try's watcher)
	nft            string                  // table inet symroute, as a hash of the file loaded; "" when absent
	leases         map[int]netip.Prefix    // the address a DHCP server gives a link, which networkd takes up with its file
	jobs           sync.WaitGroup
	last           chan struct{} // the reload job queued last
}

func newFakeOS(root *rootfs.Root, links ...string) *fakeOS {
	f := &fakeOS{
		root: root, links: map[string]int{"lo": 1}, addrs: map[int][]netip.Prefix{},
		applied: map[int]generator.Effects{}, states: map[int]string{}, files: map[int]string{},
		fail: map[string]error{}, running: map[record.Process]bool{}, neverConfigure: map[string]bool{}, ignore: map[string]bool{}, noBroadcast: map[string]bool{},
		version: 252, sysctls: map[string]string{"net.ipv4.conf.all.rp_filter": "0"}, lag: 3 * time.Millisecond,
	}
	for i, name := range links {
		f.links[name] = i + 2
		f.sysctls[sysctlKeyFor(name)] = "0"
	}
	for _, index := range f.links {
		f.states[index] = "unmanaged"
	}
	// The kernel's own rules.
	f.rules = []routing.Rule{
		{Family: 2, Priority: 0, Table: 255, Protocol: 2, Action: 1},
		{Family: 2, Priority: 32766, Table: 254, Protocol: 2, Action: 1},
		{Family: 2, Priority: 32767, Table: 253, Protocol: 2, Action: 1},
	}
	return f
}

func sysctlKeyFor(name string) string { return "net.ipv4.conf." + name + ".rp_filter" }

func (f *fakeOS) log(format string, args ...any) {
	f.transcript = append(f.transcript, fmt.Sprintf(format, args...))
}

// injected fails call once, if a failure is set for it.
func (f *fakeOS) injected(call string) error {
	if err, ok := f.fail[call]; ok {
		delete(f.fail, call)
		f.log("%s: fails", call)
		return err
	}
	return nil
}

// Transcript returns the calls made so far, and forgets them.
func (f *fakeOS) Transcript() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := strings.Join(f.transcript, "\n")
	f.transcript = nil
	return t
}

func (f *fakeOS) deps() Deps {
	return Deps{
		Kernel: fakeKernel{f}, Networkd: fakeNetworkd{f}, Sysctl: fakeSysctl{f}, Connmark: fakeNFT{f},
		RestartNetworkd: f.restart,
		ReloadManager: func(context.Context) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.log("systemd: daemon-reload")
			return nil
		},
		ManagerAvailable: func(context.Context) error {
			if f.noManager {
				return errors.New("no systemd manager answers on the system bus")
			}
			return nil
		},
		NetworkdVersion: func(context.Context, bool) (int, error) { return f.version, nil },
		Connections: func(addrs []netip.Addr) ([]sockets.Conn, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if err := f.injected("connections"); err != nil {
				return nil, err
			}
			var out []sockets.Conn
			for _, c := range f.conns {
				if slices.Contains(addrs, c.Local.Addr()) {
					out = append(out, c)
				}
			}
			return out, nil
		},
		Self: record.Process{PID: 1, Start: 1},
		Alive: func(p record.Process) bool {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.running[p]
		},
	}
}

// --- networkd ---

// desired reads what networkd would configure on each link from the files under the root.
func (f *fakeOS) desired() (map[int]generator.Effects, map[int]string, bool) {
	out, files := map[int]generator.Effects{}, map[int]string{}
	fsys := f.root.ReadFS()
	loaded, err := networkfiles.Load(fsys, nil)
	if err != nil {
		panic(err)
	}
	for name, index := range f.links {
		if f.ignore[name] {
			continue
		}
		link := networkfiles.Link{Name: name}
		if name == "lo" {
			link = generator.Loopback
		}
		first, ok := networkfiles.FirstMatch(loaded, link)
		if !ok {
			continue
		}
		data, _ := fs.ReadFile(fsys, first.Path)
		drops, _ := fs.Glob(fsys, ownership.NetworkDir+"/"+first.Name+".d/*.conf")
		for _, d := range drops {
			more, _ := fs.ReadFile(fsys, d)
			data = append(data, '\n')
			data = append(data, more...)
		}
		out[index], files[index] = generator.ReadEffects(data), "/"+first.Path
	}
	_, err = fs.Stat(fsys, ownership.NetworkdConfPath)
	return out, files, err == nil
}

func (f *fakeOS) reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("networkd: reload")
	if err := f.injected("reload"); err != nil {
		return err
	}
	want, files, _ := f.desired()
	f.loaded, f.loadedFiles = want, files
	f.reconfigure(want, files, false)
	return nil
}

func (f *fakeOS) restart(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("systemd: restart systemd-networkd.service")
	if f.noManager {
		return errors.New("no systemd manager answers on the system bus")
	}
	if err := f.injected("restart"); err != nil {
		return err
	}
	want, files, keep := f.desired()
	f.loaded, f.loadedFiles = want, files
	f.keepForeign = keep
	// A networkd that starts forgets what it configured; told to keep foreign rules, it leaves them in the
	// kernel, and otherwise deletes every rule no file configures, the kernel's excepted.
	f.applied = map[int]generator.Effects{}
	if !keep {
		var wanted []record.Rule
		for _, e := range want {
			wanted = append(wanted, e.Rules...)
		}
		f.rules = slices.DeleteFunc(f.rules, func(r routing.Rule) bool {
			return r.Protocol != 2 && !slices.Contains(wanted, ownership.RuleOf(r))
		})
	}
	for index := range f.states {
		f.states[index] = "unmanaged"
	}
	f.reconfigure(want, files, true)
	return nil
}

// reconfigure takes up the links whose configuration changed, a moment later, announcing each step.
func (f *fakeOS) reconfigure(want map[int]generator.Effects, files map[int]string, all bool) {
	links := maps.Clone(f.links)
	if f.onReload != nil {
		f.onReload()
	}
	// Jobs run one after another, as networkd takes reloads up in order; what changed is decided when a job
	// runs, against what networkd has configured by then.
	f.jobs.Add(1)
	prev := f.last
	done := make(chan struct{})
	f.last = done
	go func() {
		defer f.jobs.Done()
		defer close(done)
		if prev != nil {
			<-prev
		}
		time.Sleep(f.lag)
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, index := range links {
			name := f.nameOf(index)
			w, managed := want[index]
			cur, had := f.applied[index]
			if !all && managed == had && sameEffects(w, cur) && files[index] == f.files[index] {
				continue
			}
			f.drop(index)
			if !managed {
				f.announce(index, "unmanaged")
				delete(f.files, index)
				continue
			}
			f.announce(index, "initialized")
			f.announce(index, "configuring")
			if f.neverConfigure[name] {
				continue
			}
			f.add(index, w)
			f.files[index] = files[index]
			f.announce(index, "configured")
		}
	}()
}

func (f *fakeOS) announce(index int, state string) {
	f.states[index] = state
	for _, w := range f.watchers {
		select {
		case w <- networkd.LinkEvent{Index: index, State: state}:
		default:
		}
	}
}

func sameEffects(a, b generator.Effects) bool {
	return slices.Equal(a.Addresses, b.Addresses) && slices.Equal(a.Rules, b.Rules) && slices.Equal(a.Routes, b.Routes)
}

// drop removes what networkd configured on the link, keeping a rule another link's file also holds.
func (f *fakeOS) drop(index int) {
	cur := f.applied[index]
	delete(f.applied, index)
	var others []record.Rule
	for _, e := range f.applied {
		others = append(others, e.Rules...)
	}
	f.rules = slices.DeleteFunc(f.rules, func(r routing.Rule) bool {
		return r.Protocol == 4 && slices.Contains(cur.Rules, ownership.RuleOf(r)) && !slices.Contains(others, ownership.RuleOf(r))
	})
	f.routes = slices.DeleteFunc(f.routes, func(r routing.Route) bool { return r.LinkIndex == index })
	delete(f.addrs, index)
}

func (f *fakeOS) add(index int, e generator.Effects) {
	f.applied[index] = e
	f.addrs[index] = append([]netip.Prefix(nil), e.Addresses...)
	if a, ok := f.leases[index]; ok {
		// As networkd with [DHCPv4] RouteTable=1000001: the address without a prefix route, the lease's routes in the table.
		f.addrs[index] = append(f.addrs[index], a)
		f.routes = append(f.routes,
			routing.Route{Family: routing.FamilyV4, Destination: a.Masked(), Table: 1000001, LinkIndex: index},
			routing.Route{Family: routing.FamilyV4, Gateway: netip.MustParseAddr("10.2.0.1"), Table: 1000001, LinkIndex: index})
	}
	for _, a := range e.Addresses {
		if !a.IsSingleIP() {
			f.routes = append(f.routes, routing.Route{Destination: a.Masked(), Table: 254, LinkIndex: index})
		}
	}
	for _, r := range e.Routes {
		f.routes = append(f.routes, routing.Route{Destination: r.Destination, Gateway: r.Gateway, Table: r.Table, LinkIndex: index})
	}
	for _, r := range e.Rules {
		if !slices.ContainsFunc(f.rules, func(k routing.Rule) bool { return ownership.RuleOf(k) == r }) {
			fam := 2
			if r.From.IsValid() && r.From.Addr().Is6() || r.To.IsValid() && r.To.Addr().Is6() || r.Family == 6 {
				fam = 10
			}
			f.rules = append(f.rules, routing.Rule{Family: fam, Priority: r.Priority, From: r.From, To: r.To, Mark: r.Mark, Mask: r.Mask, Iif: r.Iif, Table: r.Table, SuppressDefault: r.SuppressDefault, Protocol: 4, Action: 1})
		}
	}
}

func (f *fakeOS) nameOf(index int) string {
	for name, i := range f.links {
		if i == index {
			return name
		}
	}
	return ""
}

type fakeNetworkd struct{ f *fakeOS }

func (n fakeNetworkd) Reload(context.Context) error { return n.f.reload() }

func (n fakeNetworkd) ReconfigureLink(_ context.Context, index int) error {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("networkd: reconfigure %s", f.nameOf(index))
	// As networkd: the configuration it loaded, not the files as they are now.
	delete(f.applied, index) // reconfiguring drops and re-adds the link's configuration
	only := map[int]generator.Effects{}
	if w, ok := f.loaded[index]; ok {
		only[index] = w
	}
	f.reconfigureOne(index, only, f.loadedFiles)
	return nil
}

func (f *fakeOS) reconfigureOne(index int, want map[int]generator.Effects, files map[int]string) {
	saved := f.links
	f.links = map[string]int{f.nameOf(index): index}
	f.reconfigure(want, files, true)
	f.links = saved
}

func (n fakeNetworkd) DescribeLink(_ context.Context, index int) (networkd.Link, error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.injected("describe"); err != nil {
		return networkd.Link{}, err
	}
	return networkd.Link{Index: index, Name: f.nameOf(index), AdministrativeState: f.states[index], NetworkFile: f.files[index]}, nil
}

func (n fakeNetworkd) DescribeLinks(ctx context.Context) ([]networkd.Link, error) {
	var out []networkd.Link
	n.f.mu.Lock()
	links := maps.Clone(n.f.links)
	n.f.mu.Unlock()
	for _, index := range links {
		l, err := n.DescribeLink(ctx, index)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func (n fakeNetworkd) WatchLinks() (<-chan networkd.LinkEvent, func(), error) {
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan networkd.LinkEvent, 64)
	f.watchers = append(f.watchers, ch)
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.watchers = slices.DeleteFunc(f.watchers, func(w chan networkd.LinkEvent) bool { return w == ch })
	}, nil
}

// --- kernel ---

type fakeKernel struct{ f *fakeOS }

func (k fakeKernel) Rules() ([]routing.Rule, error) {
	k.f.mu.Lock()
	defer k.f.mu.Unlock()
	out := append([]routing.Rule(nil), k.f.rules...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Priority < out[j].Priority })
	return out, nil
}

func (k fakeKernel) Routes(table uint32) ([]routing.Route, error) {
	k.f.mu.Lock()
	defer k.f.mu.Unlock()
	var out []routing.Route
	for _, r := range k.f.routes {
		if r.Table == table {
			out = append(out, r)
		}
	}
	return out, nil
}

func (k fakeKernel) RoutesOn(index int) ([]routing.Route, error) {
	k.f.mu.Lock()
	defer k.f.mu.Unlock()
	var out []routing.Route
	for _, r := range k.f.routes {
		if r.LinkIndex == index && r.Table != 255 {
			out = append(out, r)
		}
	}
	return out, nil
}

func (k fakeKernel) Addresses(index int) ([]routing.Address, error) {
	k.f.mu.Lock()
	defer k.f.mu.Unlock()
	var out []routing.Address
	for _, p := range k.f.addrs[index] {
		a := routing.Address{Prefix: p}
		if p.Addr().Is4() && p.Bits() <= 30 && !k.f.noBroadcast[k.f.nameOf(index)] {
			a.Broadcast = subnetBroadcast(p)
		}
		out = append(out, a)
	}
	return out, nil
}

func (k fakeKernel) LinkIndex(name string) (int, bool, error) {
	k.f.mu.Lock()
	defer k.f.mu.Unlock()
	i, ok := k.f.links[name]
	return i, ok, nil
}

func (k fakeKernel) LinkName(index int) (string, error) {
	k.f.mu.Lock()
	defer k.f.mu.Unlock()
	if name := k.f.nameOf(index); name != "" {
		return name, nil
	}
	return "", fmt.Errorf("no link %d", index)
}

func (k fakeKernel) DeleteRule(r routing.Rule) error {
	f := k.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("kernel: delete rule %s", ownership.RuleOf(r))
	if err := f.injected("delete-rule"); err != nil {
		return err
	}
	// As the kernel: the first rule, in priority order and then the order of insertion, that matches on every
	// part the request gives. A rule that selects on more (an input interface, a mark) matches too.
	first := -1
	for i, x := range f.rules {
		if x.Family == r.Family && ownership.RuleOf(x) == ownership.RuleOf(r) && (r.Protocol == 0 || x.Protocol == r.Protocol) &&
			(r.Action == 0 || x.Action == r.Action) && (first < 0 || x.Priority < f.rules[first].Priority) {
			first = i
		}
	}
	if first < 0 {
		return nil // ENOENT, which the real reader ignores
	}
	f.rules = slices.Delete(f.rules, first, first+1)
	return nil
}

func (k fakeKernel) AddRule(r routing.Rule) error {
	f := k.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("kernel: add rule %s protocol %d", ownership.RuleOf(r), r.Protocol)
	if err := f.injected("add-rule"); err != nil {
		return err
	}
	for _, x := range f.rules {
		if x == r {
			return nil // EEXIST, which the real reader ignores
		}
	}
	f.rules = append(f.rules, r)
	return nil
}

func (k fakeKernel) AddAddress(index int, a routing.Address) error {
	f := k.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("kernel: add address %s to %d", a.Prefix, index)
	if !slices.Contains(f.addrs[index], a.Prefix) {
		f.addrs[index] = append(f.addrs[index], a.Prefix)
	}
	return nil
}

func (k fakeKernel) AddMainRoute(index int, r routing.Route) error {
	f := k.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("kernel: add route %s via %s dev %d", r.Destination, r.Gateway, index)
	f.routes = append(f.routes, routing.Route{Destination: r.Destination, Gateway: r.Gateway, Table: 254, LinkIndex: index})
	return nil
}

// RouteGet walks the rules in priority order and looks the destination up in each rule's table, as the kernel
// does for a packet the host sends from src.
func (k fakeKernel) RouteGet(src, dst netip.Addr, mark uint32) (routing.Answer, error) {
	f := k.f
	f.mu.Lock()
	defer f.mu.Unlock()
	rules := append([]routing.Rule(nil), f.rules...)
	sort.SliceStable(rules, func(i, j int) bool { return rules[i].Priority < rules[j].Priority })
	for _, r := range rules {
		if r.Table == 255 || r.From.IsValid() && (!src.IsValid() || !r.From.Contains(src)) || r.To.IsValid() && !r.To.Contains(dst) {
			continue
		}
		if r.Iif != "" || r.Mark != 0 && mark&r.Mask != r.Mark {
			continue // a lookup as `ip route get` makes it comes from no interface, and carries mark or none
		}
		best := -1
		var ans routing.Answer
		for _, rt := range f.routes {
			if rt.Table != r.Table {
				continue
			}
			bits := 0
			if rt.Destination.IsValid() {
				if !rt.Destination.Contains(dst) {
					continue
				}
				bits = rt.Destination.Bits()
			} else if rt.Gateway.Is6() != dst.Is6() {
				continue
			}
			if bits > best {
				best, ans = bits, routing.Answer{LinkIndex: rt.LinkIndex, Table: rt.Table, Gateway: rt.Gateway}
			}
		}
		if best > 0 || best == 0 && !r.SuppressDefault {
			return ans, nil
		}
	}
	return routing.Answer{}, fmt.Errorf("route get %s from %s: network is unreachable", dst, src)
}

// --- sysctl ---

type fakeSysctl struct{ f *fakeOS }

func (s fakeSysctl) key(k string) string { return strings.ReplaceAll(sysctlconf.Path(k), "/", ".") }

func (s fakeSysctl) Read(key string) (string, bool, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	v, ok := s.f.sysctls[s.key(key)]
	return v, ok, nil
}

func (s fakeSysctl) Write(key, value string) error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.log("sysctl: write %s = %s", key, value)
	if err := s.f.injected("sysctl-write"); err != nil {
		return err
	}
	if _, ok := s.f.sysctls[s.key(key)]; ok {
		s.f.sysctls[s.key(key)] = value
	}
	return nil
}

func (s fakeSysctl) Apply(_ context.Context, settings []plan.Sysctl) (string, error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	var keys []string
	for _, st := range settings {
		keys = append(keys, st.Key)
	}
	s.f.log("sysctl: apply %s", strings.Join(keys, " "))
	if err := s.f.injected("sysctl-apply"); err != nil {
		return "", err
	}
	for _, st := range settings {
		if _, ok := s.f.sysctls[s.key(st.Key)]; ok {
			s.f.sysctls[s.key(st.Key)] = st.Value
		}
	}
	return "", nil
}

// forgetRules makes networkd forget the rules it configured, as a networkd restarted with foreign rules kept
// does: they stay in the kernel, and a reload no longer removes the ones no file configures.
func (f *fakeOS) forgetRules() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for index, e := range f.applied {
		e.Rules = nil
		f.applied[index] = e
	}
}

// --- nftables ---

// fakeNFT holds table inet symroute as the hash of the file last loaded into it.
type fakeNFT struct{ f *fakeOS }

func (n fakeNFT) Load(_ context.Context, path string) error {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	if err := n.f.injected("nft load"); err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	n.f.nft = hex.EncodeToString(sum[:])
	n.f.log("nft: load %s", filepath.Base(path))
	return nil
}

func (n fakeNFT) Available() error {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	return n.f.injected("nft available")
}

func (n fakeNFT) Hash() (string, bool, error) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	return n.f.nft, n.f.nft != "", nil
}

func (n fakeNFT) Delete() error {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	if err := n.f.injected("nft delete"); err != nil {
		return err
	}
	n.f.nft = ""
	n.f.log("nft: delete table")
	return nil
}
