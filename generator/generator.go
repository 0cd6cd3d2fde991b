// Package generator renders a plan into the files systemd-networkd, systemd-sysctl and iproute2 read. It reads
// the system's existing .network files (through an fs.FS) to place drop-ins, and writes nothing itself.
package generator

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"unicode/utf8"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/templates"
)

var labelChars = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+@-]{0,63}$`)

// DescriptionLabel is how every generated file's header names the description: the base name of its path, so
// the same description gives the same bytes from any directory, and nothing at all when that name is not plain
// (a path is the user's, and may hold any byte, a newline included).
func DescriptionLabel(p string) string {
	base := path.Base(strings.TrimRight(p, "/"))
	if !labelChars.MatchString(base) {
		return ""
	}
	return base
}

// Options are the inputs beside the plan.
type Options struct {
	// Source names the description in every file's header: a DescriptionLabel, or "".
	Source string
	// Root is the system's file tree, read to find the file a drop-in extends and to check that symroute's own
	// files win. Nil stands for a system with no .network files.
	Root fs.FS
	// Links are the running links' facts (MACs, kind, driver), by name, when the root is the running system's:
	// then a file that matches by MAC or kind is decided, not a maybe.
	Links map[string]networkfiles.Link
}

// linkOf is what symroute knows of the interface's link: the running link's facts when given, the description's
// otherwise.
func linkOf(p *plan.Plan, ifc plan.Interface, live map[string]networkfiles.Link) networkfiles.Link {
	if l, ok := live[ifc.Name]; ok {
		if l.PermanentMAC == nil {
			l.PermanentMAC = ifc.PermanentMAC
		}
		return l
	}
	l := networkfiles.Link{Name: ifc.Name, PermanentMAC: ifc.PermanentMAC}
	for _, other := range p.Interfaces {
		if other.Name != ifc.Name && other.PermanentMAC != nil {
			l.OthersPermanentMACs = append(l.OthersPermanentMACs, other.PermanentMAC)
		}
	}
	return l
}

// Generate renders p. The report holds problems the user fixes in the description (a drop-in with no file to
// extend); the error is for a root that cannot be read. Files are sorted by path.
func Generate(p *plan.Plan, opts Options) ([]fileset.File, report.Report, error) {
	var r report.Report
	var existing []networkfiles.File
	if opts.Root != nil {
		var err error
		if existing, err = networkfiles.Load(opts.Root, ownership.IsOwned); err != nil {
			return nil, r, err
		}
	}
	g := &gen{tmpl: tmpl, source: opts.Source}

	for _, ifc := range p.Interfaces {
		view := newIfaceView(ifc, opts.Source)
		ip := report.Path{"interfaces", ifc.Position}
		link := linkOf(p, ifc, opts.Links)
		choice := networkfiles.Choose(existing, link)
		first, found := choice.File, choice.Found
		switch ifc.Mode {
		case description.ModeOwn:
			own := ownership.OwnNetworkPath(ifc.Name)
			if found && first.Name < path.Base(own) {
				r.Add(report.Error, ip.Key("mode"), p.Host.Pos(ip.Key("mode")),
					"%s already matches %s (%s) and sorts before %s, so networkd would ignore symroute's file; set mode: drop-in to extend %s, or remove it",
					"/"+first.Path, ifc.Name, first.MatchSummary(), path.Base(own), first.Name)
				continue
			}
			if before := uncertainBefore(choice, path.Base(own)); len(before.Uncertain) > 0 {
				r.Add(report.Error, ip.Key("mode"), p.Host.Pos(ip.Key("mode")),
					"%s may match %s and sorts before %s, so networkd might ignore symroute's file; symroute cannot tell %s. %s",
					before.Describe(), ifc.Name, path.Base(own), withoutTheLink(link), howToDecide(link))
				continue
			}
			g.render(own, "network.tmpl", view)
			g.last().Interface, g.last().Configures = ifc.Name, "/"+own
		case description.ModeDropIn:
			// The first file that matches, or may: a catch-all there is refused whether or not it takes the link.
			candidate, verb := first, "configures"
			if len(choice.Uncertain) > 0 {
				candidate, verb = choice.Uncertain[0].File, "may configure"
			}
			if (found || len(choice.Uncertain) > 0) && !candidate.Specific(link) {
				r.Add(report.Error, ip.Key("mode"), p.Host.Pos(ip.Key("mode")),
					"%s %s %s but also matches other links (%s): a drop-in would add %s's routes to every one of them; set mode: own (symroute's file sorts first and takes over %s), or give %s a .network file of its own",
					"/"+candidate.Path, verb, ifc.Name, candidate.MatchSummary(), ifc.Name, ifc.Name, ifc.Name)
				continue
			}
			if len(choice.Uncertain) > 0 {
				target := "no file certainly matches it"
				if found {
					target = fmt.Sprintf("before %s, which does", "/"+first.Path)
				}
				r.Add(report.Error, ip.Key("mode"), p.Host.Pos(ip.Key("mode")),
					"%s may configure %s (%s), so symroute cannot tell which file to add the drop-in to: it cannot tell %s. %s",
					choice.Describe(), ifc.Name, target, withoutTheLink(link), howToDecide(link))
				continue
			}
			if !found {
				r.Add(report.Error, ip.Key("mode"), p.Host.Pos(ip.Key("mode")),
					"no .network file under %s matches %s, so there is nothing to add a drop-in to; set mode: own to let symroute write the link's file",
					"/"+strings.Join(networkfiles.SearchDirs, ", /"), ifc.Name)
				continue
			}
			if why := unsafeName(first.Name); why != "" {
				r.Add(report.Error, ip.Key("mode"), p.Host.Pos(ip.Key("mode")),
					"%s configures %s, but its name %s: symroute would have to write it into its drop-in's path and comments. Rename the file, or set mode: own",
					report.Quote("/"+first.Path), ifc.Name, why)
				continue
			}
			if ifc.Dynamic() && opts.Root != nil {
				if key, why := dynamicUnserved(opts.Root, first.Path, ifc); key != "" {
					r.Add(report.Error, ip.Key(key), p.Host.Pos(ip.Key(key)),
						"%s configures %s, but %s: a drop-in only moves the routes of a lease or advertisement the file takes. Turn it on in that file, or set mode: own",
						"/"+first.Path, ifc.Name, why)
					continue
				}
			}
			view.Target = "/" + first.Path
			g.render(ownership.NetworkDir+"/"+first.Name+".d/"+ownership.DropInName, "dropin.tmpl", view)
			g.last().Interface, g.last().Configures = ifc.Name, "/"+first.Path
		}
	}
	if len(p.ClusterRules) > 0 {
		g.cluster(p, existing, &r)
	}
	if opts.Root != nil {
		if err := checkSysctlOverrides(opts.Root, p, &r); err != nil {
			return nil, r, err
		}
	}
	g.render(ownership.SysctlPath, "sysctl.tmpl", p)
	g.render(ownership.RTTablesPath, "rt_tables.tmpl", p)
	if p.KeepForeign {
		var names []string
		for _, c := range p.Host.Components {
			names = append(names, c.Name)
		}
		g.render(ownership.NetworkdConfPath, "networkd.conf.tmpl", struct{ Source, Components string }{opts.Source, strings.Join(names, ", ")})
	}
	if p.MarkMask != 0 {
		g.connmark(p, opts.Root, &r)
	}
	g.follow(p)
	renderErr, checkErr := g.renderAll()
	if renderErr != nil {
		return nil, r, renderErr
	}
	if checkErr != nil {
		r.Add(report.Error, nil, p.Host.Pos(nil), "refusing to write %v. A value in the description got past symroute's validation; nothing was written. Please report this with the description", checkErr)
		return nil, r, nil
	}
	g.files = append(g.files, g.links...)
	sort.Slice(g.files, func(i, j int) bool { return g.files[i].Path < g.files[j].Path })
	return g.files, r, nil
}

var tmpl = template.Must(template.New("").Option("missingkey=error").Funcs(template.FuncMap{
	"hex": func(v uint32) string { return fmt.Sprintf("0x%08x", v) },
	"family": func(f int) string {
		switch f {
		case 4:
			return "ipv4"
		case 6:
			return "ipv6"
		}
		return "both"
	},
}).ParseFS(templates.FS, "*.tmpl"))

// NFT is where the connmark unit finds nft: /usr/sbin on Debian, Fedora and Flatcar alike.
const NFT = "/usr/sbin/nft"

// connmarkView is what the nftables and unit templates see.
type connmarkView struct {
	Source     string
	Mask, Keep uint32
	// Values are the bits of an interface's value; RequestBit flags a request on its own interface.
	Values, RequestBit uint32
	Tracked            []trackedView
	// Loader is the unit's command: nft loading the ruleset file, Ruleset.
	Loader, Ruleset string
}

type trackedView struct {
	Name string
	// Mark is the interface's value; Request is it with the request bit.
	Mark, Request uint32
}

// connmark renders the nftables table that marks tracked connections, the unit that loads it at boot, and the
// link that enables the unit.
func (g *gen) connmark(p *plan.Plan, root fs.FS, r *report.Report) {
	view := connmarkView{Source: g.source, Mask: p.MarkMask, Keep: ^p.MarkMask, Values: p.ValueMask(), RequestBit: p.RequestBit(), Loader: NFT + " -f /" + ownership.ConnmarkRulesetPath, Ruleset: "/" + ownership.ConnmarkRulesetPath}
	for _, ifc := range p.Tracked() {
		view.Tracked = append(view.Tracked, trackedView{ifc.Name, ifc.Mark, ifc.Mark | p.RequestBit()})
	}
	g.render(ownership.ConnmarkRulesetPath, "connmark.nft.tmpl", view)
	g.render(ownership.ConnmarkUnitPath, "connmark.service.tmpl", view)
	g.links = append(g.links, fileset.File{Path: ownership.ConnmarkWantsLink, Mode: fs.ModeSymlink | 0o777, Link: "/" + ownership.ConnmarkUnitPath})
	if root != nil {
		if _, err := fs.Stat(root, strings.TrimPrefix(NFT, "/")); err != nil {
			first := p.Tracked()[0].Position
			at := report.Path{"interfaces", first, "track_connections"}
			r.Add(report.Warning, at, p.Host.Pos(at), "%s is not on this root, and %s runs it at boot to load the connection marks; install nftables (the package that ships nft)", NFT, ownership.ConnmarkUnit)
		}
	}
}

// dynamicUnserved says which of a dynamic interface's keys the file a drop-in extends does not serve: dhcp4
// where its DHCP= does not include IPv4, accept_ra where it sets IPv6AcceptRA= off (networkd's default accepts
// advertisements on a link that does not forward). The file's own [Network] lines decide; the last one wins, as
// in networkd.
func dynamicUnserved(root fs.FS, file string, ifc plan.Interface) (key, why string) {
	data, err := fs.ReadFile(root, file)
	if err != nil {
		return "", ""
	}
	dhcp, ra := "", ""
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "[Network]" {
			continue
		}
		switch strings.TrimSpace(k) {
		case "DHCP":
			dhcp = strings.ToLower(strings.TrimSpace(v))
		case "IPv6AcceptRA":
			ra = strings.ToLower(strings.TrimSpace(v))
		}
	}
	if ifc.DHCP4 && !slices.Contains([]string{"yes", "true", "on", "1", "ipv4", "both"}, dhcp) {
		if dhcp == "" {
			return "dhcp4", "it sets no DHCP=, so networkd runs no DHCPv4 client there"
		}
		return "dhcp4", fmt.Sprintf("its DHCP=%s runs no DHCPv4 client", report.Quote(dhcp))
	}
	if ifc.AcceptRA && slices.Contains([]string{"no", "false", "off", "0"}, ra) {
		return "accept_ra", fmt.Sprintf("its IPv6AcceptRA=%s turns router advertisements off", report.Quote(ra))
	}
	return "", ""
}

// Bash runs the follower's script; /bin/bash is bash on Debian, Fedora and Flatcar alike.
const Bash = "/bin/bash"

// followView is what the follower's unit sees.
type followView struct {
	Source, Names, Script, Command string
}

// follow renders the follower of the dynamic interfaces' addresses: its script, the unit that runs it, and the
// link that enables the unit.
func (g *gen) follow(p *plan.Plan) {
	var names, args []string
	for _, ifc := range p.Interfaces {
		if ifc.Dynamic() {
			names = append(names, ifc.Name)
			args = append(args, FollowArg(ifc))
		}
	}
	if len(names) == 0 {
		return
	}
	view := followView{Source: g.source, Names: strings.Join(names, ", "), Script: "/" + ownership.FollowScriptPath,
		Command: unitEscape(strings.Join(append([]string{Bash, "/" + ownership.FollowScriptPath}, args...), " "))}
	g.render(ownership.FollowScriptPath, "follow-addresses.tmpl", view)
	g.render(ownership.FollowUnitPath, "follow.service.tmpl", view)
	g.links = append(g.links, fileset.File{Path: ownership.FollowWantsLink, Mode: fs.ModeSymlink | 0o777, Link: "/" + ownership.FollowUnitPath})
}

// FollowArg is the follower's argument for a dynamic interface: NAME:TABLE:PRIORITY. An interface name holds no
// colon, so the split is unambiguous.
func FollowArg(ifc plan.Interface) string {
	return fmt.Sprintf("%s:%d:%d", ifc.Name, ifc.Table, ifc.Priority)
}

// FollowSlotsOf reads the slots back from the follower unit's command, for a removal with no record of them.
func FollowSlotsOf(unit []byte) []record.FollowSlot {
	var out []record.FollowSlot
	for _, line := range strings.Split(string(unit), "\n") {
		cmd, ok := strings.CutPrefix(line, "ExecStart=")
		if !ok || !isFollowCommand(cmd) {
			continue
		}
		for _, w := range strings.Split(cmd, " ")[2:] {
			name, rest, _ := strings.Cut(w, ":")
			table, prio, _ := strings.Cut(rest, ":")
			t, _ := strconv.ParseUint(table, 10, 32)
			p, _ := strconv.ParseUint(prio, 10, 32)
			name = strings.NewReplacer("$$", "$", "%%", "%").Replace(name)
			out = append(out, record.FollowSlot{Interface: name, Table: uint32(t), Priority: uint32(p)})
		}
	}
	return out
}

// unitEscape writes s for a unit file's command line, where systemd expands $ and % themselves: an interface name
// may hold a $.
func unitEscape(s string) string {
	return strings.NewReplacer("$", "$$", "%", "%%").Replace(s)
}

// ifaceView is what the .network and drop-in templates see. It copies the fields they use rather than embedding
// plan.Interface: text/template looks a field up by name at every use, and a promoted field costs a search of
// every embedded struct, which was a third of the rendering's allocations.
type ifaceView struct {
	Name, TableName, Source, Target string
	PermanentMAC                    net.HardwareAddr
	Addresses                       []netip.Prefix
	Table, Priority                 uint32
	TableRoutes, MainRoutes         []plan.Route
	Rules, MarkRules, LeaseRules    []plan.Rule
	DHCP4, AcceptRA                 bool
}

func newIfaceView(ifc plan.Interface, source string) ifaceView {
	return ifaceView{
		Name: ifc.Name, TableName: ifc.TableName, Source: source,
		PermanentMAC: ifc.PermanentMAC, Addresses: ifc.Addresses, Table: ifc.Table, Priority: ifc.Priority,
		TableRoutes: ifc.TableRoutes, MainRoutes: ifc.MainRoutes, Rules: ifc.Rules, MarkRules: ifc.MarkRules,
		LeaseRules: ifc.LeaseRules, DHCP4: ifc.DHCP4, AcceptRA: ifc.AcceptRA,
	}
}

// Loopback is lo as networkd matches it: the same on every host, so every fact is known.
var Loopback = networkfiles.Link{Name: "lo", Type: "loopback", Live: true, MAC: make([]byte, 6), DriverKnown: true}

// uncertainBefore keeps the uncertain files that sort before name.
func uncertainBefore(c networkfiles.Choice, name string) networkfiles.Choice {
	var out networkfiles.Choice
	for _, u := range c.Uncertain {
		if u.File.Name < name {
			out.Uncertain = append(out.Uncertain, u)
		}
	}
	return out
}

// withoutTheLink says what symroute is missing to decide.
func withoutTheLink(l networkfiles.Link) string {
	if l.Live {
		return "from the running link"
	}
	return "without the running link"
}

// howToDecide tells the user how to let symroute decide.
func howToDecide(l networkfiles.Link) string {
	if l.Live {
		return "Make the file's [Match] decide by Name= or MAC, or give the link a file of its own that sorts first"
	}
	return "Run symroute on the host itself (--root /), where it reads the link's MAC, kind and driver; or declare match: {permanent_mac: ...} for a file that matches by MAC"
}

// cluster renders the cluster_cidrs rules on lo: in symroute's own file for lo, or, when a file of the system's
// already configures lo (anycast addresses on lo are common), as a drop-in to it, so lo keeps its configuration.
// A catch-all file that matches lo and sorts first is refused: a drop-in would reach every link it matches.
func (g *gen) cluster(p *plan.Plan, existing []networkfiles.File, r *report.Report) {
	view := struct {
		Source, Target string
		ClusterRules   []plan.Rule
	}{Source: g.source, ClusterRules: p.ClusterRules}
	at := report.Path{"cluster_cidrs"}
	first, found := networkfiles.FirstMatch(existing, Loopback)
	switch choice := networkfiles.Choose(existing, Loopback); {
	case len(uncertainBefore(choice, path.Base(ownership.ClusterPath)).Uncertain) > 0 || !found && len(choice.Uncertain) > 0:
		r.Add(report.Error, at, p.Host.Pos(at), "%s may match lo, so symroute cannot tell where the cluster_cidrs rules belong. Make the file's [Match] decide by Name= or Type=", choice.Describe())
	case found && first.Specific(Loopback):
		if why := unsafeName(first.Name); why != "" {
			r.Add(report.Error, at, p.Host.Pos(at), "%s configures lo, but its name %s: symroute would have to write it into its drop-in's path and comments. Rename the file", report.Quote("/"+first.Path), why)
			return
		}
		view.Target = "/" + first.Path
		g.render(ownership.NetworkDir+"/"+first.Name+".d/"+ownership.DropInName, "cluster-dropin.tmpl", view)
		g.last().Interface, g.last().Configures = Loopback.Name, "/"+first.Path
	case found && first.Name < path.Base(ownership.ClusterPath):
		r.Add(report.Error, at, p.Host.Pos(at),
			"%s matches lo (%s) and sorts before %s, where symroute puts the cluster_cidrs rules; a drop-in to it would reach every link it matches. Add Type=!loopback to its [Match], or give lo a .network file of its own",
			"/"+first.Path, first.MatchSummary(), path.Base(ownership.ClusterPath))
	default:
		g.render(ownership.ClusterPath, "cluster.tmpl", view)
		g.last().Interface, g.last().Configures = Loopback.Name, "/"+ownership.ClusterPath
	}
}

type gen struct {
	tmpl   *template.Template
	source string
	files  []fileset.File
	// todo holds, for each file, the template and data render was given; renderAll fills in the bytes.
	todo []rendering
	// links are the symbolic links to write, which have no bytes to render.
	links []fileset.File
}

type rendering struct {
	tmpl string
	data any
}

// render adds a file whose bytes renderAll will render from a template, so the caller can set the file's other
// fields through last now.
func (g *gen) render(p, name string, data any) {
	g.files = append(g.files, fileset.File{Path: p, Mode: 0o644})
	g.todo = append(g.todo, rendering{name, withSource(data, g.source)})
}

// renderAll executes every file's template and checks the result against its format, on every core: a host with
// hundreds of interfaces has hundreds of independent files. Templates fail only on a programming error, returned
// as renderErr; checkErr is the first file, in order, that the second wall refuses. A file is never half
// rendered.
func (g *gen) renderAll() (renderErr, checkErr error) {
	renderErrs := make([]error, len(g.files))
	checkErrs := make([]error, len(g.files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(g.files)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			for i := int(next.Add(1)) - 1; i < len(g.files); i = int(next.Add(1)) - 1 {
				renderErrs[i], checkErrs[i] = g.renderOne(i, &buf)
			}
		}()
	}
	wg.Wait()
	return firstOf(renderErrs), firstOf(checkErrs)
}

// renderOne renders file i, through buf, and checks it.
func (g *gen) renderOne(i int, buf *bytes.Buffer) (renderErr, checkErr error) {
	f, todo := &g.files[i], g.todo[i]
	buf.Reset()
	if err := g.tmpl.ExecuteTemplate(buf, todo.tmpl, todo.data); err != nil {
		return fmt.Errorf("render %s: %w", f.Path, err), nil
	}
	f.Data = tidy(buf.Bytes())
	if err := checkFile(*f); err != nil {
		return nil, fmt.Errorf("/%s: %w", f.Path, err)
	}
	return nil, nil
}

// firstOf returns the first non-nil error in errs, or nil.
func firstOf(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// withSource gives the plan-level templates the header's source label.
func withSource(data any, source string) any {
	if p, ok := data.(*plan.Plan); ok {
		return struct {
			*plan.Plan
			Source string
		}{p, source}
	}
	return data
}

// last returns the file added last.
func (g *gen) last() *fileset.File { return &g.files[len(g.files)-1] }

// tidy returns a copy of b with the runs of blank lines the templates' conditionals leave collapsed to one, ending
// with one newline.
func tidy(b []byte) []byte {
	b = bytes.TrimRight(b, "\n")
	out := make([]byte, 0, len(b)+1)
	newlines := 0
	for _, c := range b {
		if c != '\n' {
			newlines = 0
		} else if newlines++; newlines > 2 {
			continue
		}
		out = append(out, c)
	}
	return append(out, '\n')
}

// unsafeName says why a file name from the system cannot be written into symroute's files, or "".
func unsafeName(name string) string {
	if !utf8.ValidString(name) {
		return "is not valid UTF-8"
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 {
			return fmt.Sprintf("holds the control character %U", c)
		}
	}
	return ""
}

// ExpectedNetworkFiles maps each interface to the .network file networkd should apply to it.
func ExpectedNetworkFiles(files []fileset.File) map[string]string {
	out := map[string]string{}
	for _, f := range files {
		if f.Interface != "" {
			out[f.Interface] = f.Configures
		}
	}
	return out
}

// CheckApplied compares the files symroute chose with the file networkd applies to each link now (applied, by
// link name, from networkd's own answer on a running host): a drop-in must go onto the file networkd applies, and
// no file of another's that networkd applies may sort before symroute's own. A difference means symroute's reading
// of the files missed a condition, or networkd has not read the files since they changed; either way the files
// would not do what they say, so the report gets an error for the interface.
func CheckApplied(p *plan.Plan, files []fileset.File, applied map[string]string, r *report.Report) {
	for _, ifc := range p.Interfaces {
		now := applied[ifc.Name]
		if now == "" {
			continue // networkd does not manage the link now: nothing to compare
		}
		at := report.Path{"interfaces", ifc.Position, "mode"}
		for _, f := range files {
			if f.Interface != ifc.Name {
				continue
			}
			own := "/" + ownership.OwnNetworkPath(ifc.Name)
			// networkd still applying symroute's own file to a drop-in interface is a switch from mode own.
			switch {
			case f.Configures != own && f.Configures != now && !ownership.IsOwnedName(path.Base(now)):
				r.Add(report.Error, at, p.Host.Pos(at),
					"networkd applies %s to %s now, but symroute would add its drop-in to %s. If the files changed since networkd last read them, run networkctl reload and check again; otherwise a [Match] condition symroute does not evaluate decides: set mode: own",
					report.Quote(now), ifc.Name, report.Quote(f.Configures))
			case f.Configures == own && now != own && !ownership.IsOwnedName(path.Base(now)) && path.Base(now) < path.Base(own):
				r.Add(report.Error, at, p.Host.Pos(at),
					"networkd applies %s to %s now, and it sorts before %s, so networkd would ignore symroute's file; a [Match] condition symroute does not evaluate decides. Set mode: drop-in, or give the file a name that sorts after %s",
					report.Quote(now), ifc.Name, path.Base(own), path.Base(own))
			}
		}
	}
}
