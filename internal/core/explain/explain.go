// Package explain answers "where will the reply to this request leave, and why?" from the kernel's own decisions:
// the interface the request arrives on and whether rp_filter lets it in, the rule and table the reply takes and
// the interface and gateway it leaves by, and, when the two differ, the smallest change that makes them agree. It
// asks its questions through Kernel and Sysctl, which the caller backs with netlink and /proc/sys; it does no I/O
// itself, so any host is explained the same way, with or without a description.
package explain

import (
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/ifname"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/reservations"
	"github.com/symroute/symroute/internal/core/routing"
)

// Kernel answers explain's questions about the running kernel; *kernel.Reader implements it. It reads no more
// than it must: no dump of every table (main can hold a BGP-fed node's million routes), only the tables the rules
// send the reply's lookups to.
type Kernel interface {
	Links() ([]routing.Link, error)
	AllAddresses() (map[int][]routing.Address, error)
	Rules() ([]routing.Rule, error)
	Routes(table uint32) ([]routing.Route, error)
	Lookup(q routing.Query) (routing.Answer, error)
}

// Sysctl reads a kernel parameter by its sysctl.d key; sysctl.Applier implements it.
type Sysctl interface {
	Read(key string) (value string, exists bool, err error)
}

// Question is what the user asks: a request from Client to To (an address of the host, or one it DNATs to),
// arriving on In when given.
type Question struct {
	Client, To netip.Addr
	Port       int
	Proto      string
	In         string
}

// Result is explain's answer. Its JSON field names are stable (the README lists them).
type Result struct {
	Client    string  `json:"client"`
	To        string  `json:"to"`
	Port      int     `json:"port,omitempty"`
	Proto     string  `json:"proto,omitempty"`
	Request   Request `json:"request"`
	Reply     Reply   `json:"reply"`
	Symmetric bool    `json:"symmetric"`
	// Fix is the smallest change that makes the reply leave where the request came in ("" when nothing needs
	// one), or the rule, table or sysctl that breaks it when it is not symroute's.
	Fix   string   `json:"fix"`
	Notes []string `json:"notes,omitempty"`
}

// Request is the request's way in.
type Request struct {
	Interface string `json:"interface"`
	// InterfaceFrom says how the interface was found: "flag" (--in), "address" (the link that holds To), or
	// "route" (the link the kernel routes Client through).
	InterfaceFrom string `json:"interface_from"`
	// RPFilter is "accept" or "drop"; RPFilterMode the effective mode (off, strict, loose) and RPFilterWhy where
	// it comes from.
	RPFilter     string `json:"rp_filter"`
	RPFilterMode string `json:"rp_filter_mode"`
	RPFilterWhy  string `json:"rp_filter_why"`
	// ReverseInterface is where rp_filter's reverse lookup of Client leaves ("" when it finds no route).
	ReverseInterface string `json:"reverse_interface,omitempty"`
	// Mark is the fwmark the request carries when symroute tracks connections on its interface.
	Mark string `json:"mark,omitempty"`
}

// Reply is the reply's way out.
type Reply struct {
	Source string `json:"source"`
	// Forwarded: the reply comes from an address that is not the host's (a pod behind DNAT) and is routed as a
	// packet arriving on FromInterface.
	Forwarded     bool   `json:"forwarded,omitempty"`
	FromInterface string `json:"from_interface,omitempty"`
	Mark          string `json:"mark,omitempty"`
	Rule          *Rule  `json:"rule"`
	Table         uint32 `json:"table"`
	TableName     string `json:"table_name"`
	Interface     string `json:"interface"`
	Gateway       string `json:"gateway,omitempty"`
	Error         string `json:"error,omitempty"`
}

// Rule is the rule a lookup took: its priority and selector, as `ip rule` shows them.
type Rule struct {
	Priority uint32 `json:"priority"`
	Selector string `json:"selector"`
	// Symroute says the rule is one symroute makes (by its priority range and shape), as far as the description
	// or the kernel shows.
	Symroute bool `json:"symroute,omitempty"`
}

// Hints is what a description adds: where an interface is described, for a fix that names the line. Host may
// be nil.
type Hints struct {
	Host *description.Host
	// Owned says whether a rule is symroute's, by the plan; nil without a description, when a rule is taken for
	// symroute's by its place in the default priority_range and networkd's protocol.
	Owned func(routing.Rule) bool
	// TableNames names tables, as rt_tables does (symroute-eth-b).
	TableNames map[uint32]string
	// Tracked says symroute's nftables table is loaded, so a tracked connection's packets carry their marks.
	Tracked bool
}

// world is what explain read once: links and their addresses, rules, and the tables it looked in.
type world struct {
	k      Kernel
	sys    Sysctl
	inv    routing.Inventory // links with their global addresses, and rules; no default routes
	names  map[int]string
	tables map[uint32][]routing.Route
	hints  Hints
	notes  []string
}

// UsageError is a question that names what the host does not have (a link): the user's to correct.
type UsageError struct{ msg string }

func (e UsageError) Error() string { return e.msg }

// Explain answers q.
func Explain(k Kernel, sys Sysctl, q Question, hints Hints) (Result, error) {
	if q.Client.Is4() != q.To.Is4() {
		return Result{}, UsageError{fmt.Sprintf("--client %s and --to %s are of different families", q.Client, q.To)}
	}
	w := &world{k: k, sys: sys, names: map[int]string{}, tables: map[uint32][]routing.Route{}, hints: hints}
	var err error
	if w.inv.Links, err = k.Links(); err != nil {
		return Result{}, err
	}
	all, err := k.AllAddresses()
	if err != nil {
		return Result{}, err
	}
	for i, l := range w.inv.Links {
		w.names[l.Index] = l.Name
		for _, a := range all[l.Index] {
			if a.Prefix.Addr().IsGlobalUnicast() {
				w.inv.Links[i].Addresses = append(w.inv.Links[i].Addresses, a.Prefix)
			}
		}
	}
	if w.inv.Rules, err = k.Rules(); err != nil {
		return Result{}, err
	}
	res := Result{Client: q.Client.String(), To: q.To.String(), Port: q.Port, Proto: q.Proto}
	if err := w.request(q, &res.Request); err != nil {
		return res, err
	}
	if err := w.reply(q, res.Request, &res.Reply); err != nil {
		return res, err
	}
	res.Symmetric = res.Reply.Error == "" && res.Reply.Interface == res.Request.Interface && res.Request.RPFilter == "accept"
	res.Fix = w.fix(q, res)
	res.Notes = w.notes
	return res, nil
}

// holder returns the link that holds a, and the address with its prefix length.
func (w *world) holder(a netip.Addr) (routing.Link, netip.Prefix, bool) {
	for _, l := range w.inv.Links {
		for _, p := range l.Addresses {
			if p.Addr() == a {
				return l, p, true
			}
		}
	}
	return routing.Link{}, netip.Prefix{}, false
}

func (w *world) local(a netip.Addr) bool {
	_, _, ok := w.holder(a)
	return ok || a.IsLoopback()
}

func (w *world) request(q Question, r *Request) error {
	switch l, _, held := w.holder(q.To); {
	case q.In != "":
		if !slices.ContainsFunc(w.inv.Links, func(l routing.Link) bool { return l.Name == q.In }) {
			return UsageError{fmt.Sprintf("--in %s: no such link here", q.In)}
		}
		r.Interface, r.InterfaceFrom = q.In, "flag"
	case held && !l.Loopback:
		// A request for an interface's address comes in on that interface: the premise of answering it there.
		r.Interface, r.InterfaceFrom = l.Name, "address"
	default:
		a, err := w.k.Lookup(routing.Query{Dst: q.Client})
		if err != nil {
			// An answer, not a failure to read: no request from the client can be answered.
			r.InterfaceFrom, r.RPFilter, r.RPFilterWhy = "route", "drop", fmt.Sprintf("the host has no route to %s: %v", q.Client, err)
			return nil
		}
		r.Interface, r.InterfaceFrom = w.names[a.LinkIndex], "route"
	}

	// The mark a tracked connection's request carries as it arrives: symroute's rule routes it by main.
	requestMark, _ := w.trackedMarks(r.Interface)
	if requestMark != 0 {
		r.Mark = fmt.Sprintf("%#x", requestMark)
	}

	if !q.To.Is4() {
		// rp_filter is IPv4's alone.
		r.RPFilter, r.RPFilterMode, r.RPFilterWhy = "accept", "off", "the kernel's rp_filter is IPv4's alone; a netfilter rpfilter rule (firewalld's IPv6_rpfilter) is not read"
		return nil
	}
	all, iface := w.sysctlInt("net.ipv4.conf.all.rp_filter"), w.sysctlInt(ifname.SysctlKey(r.Interface, "rp_filter"))
	mode := int(description.EffectiveRPFilter(all, iface))
	r.RPFilterMode = description.RPFilter(mode).String()
	r.RPFilterWhy = fmt.Sprintf("the larger of all=%d and %s=%d", all, r.Interface, iface)
	mark := uint32(0)
	if max(w.sysctlInt("net.ipv4.conf.all.src_valid_mark"), w.sysctlInt(ifname.SysctlKey(r.Interface, "src_valid_mark"))) > 0 {
		mark = requestMark
	}
	// rp_filter looks the client up as a packet from the request's destination, from no interface.
	rev, err := w.lookupFrom(q.To, q.Client, "", mark)
	if err == nil {
		r.ReverseInterface = w.names[rev.LinkIndex]
	}
	switch {
	case mode == 0:
		r.RPFilter = "accept"
	case err != nil:
		r.RPFilter = "drop"
		r.RPFilterWhy += fmt.Sprintf("; the reverse lookup of %s finds no route", q.Client)
	case mode == 1 && r.ReverseInterface != r.Interface:
		r.RPFilter = "drop"
		r.RPFilterWhy += fmt.Sprintf("; strict, and the reverse lookup of %s leaves by %s, not %s", q.Client, r.ReverseInterface, r.Interface)
	default:
		r.RPFilter = "accept"
		if mode == 2 && r.ReverseInterface != r.Interface {
			r.RPFilterWhy += fmt.Sprintf("; loose, and %s is reachable (by %s)", q.Client, r.ReverseInterface)
		}
	}
	return nil
}

// lookupFrom asks how a packet from src to dst carrying mark is routed. For the host's own source the kernel
// answers (an output lookup, which rp_filter's reverse lookup is too). For another source (a pod behind DNAT)
// walk answers in user space, as arriving on iif (lo for rp_filter's lookup): asking the kernel would also run
// that link's own rp_filter and forwarding checks, which are not the question.
func (w *world) lookupFrom(src, dst netip.Addr, iif string, mark uint32) (routing.Answer, error) {
	if w.local(src) {
		return w.k.Lookup(routing.Query{Src: src, Dst: dst, Mark: mark})
	}
	if iif == "" {
		iif = "lo"
	}
	r, ans, err := w.walk(packet{src: src, dst: dst, iif: iif, mark: mark}, 0)
	if err == nil && r == nil {
		err = fmt.Errorf("no rule finds a route from %s to %s", src, dst)
	}
	return ans, err
}

func (w *world) reply(q Question, req Request, r *Reply) error {
	r.Source = q.To.String()
	_, replyMark := w.trackedMarks(req.Interface)
	if replyMark != 0 {
		r.Mark = fmt.Sprintf("%#x", replyMark)
	}
	iif := ""
	if !w.local(q.To) {
		// A reply from a pod or backend behind DNAT: it arrives on the link the host reaches it by.
		a, err := w.k.Lookup(routing.Query{Dst: q.To})
		if err != nil {
			return fmt.Errorf("which link leads to %s: %w", q.To, err)
		}
		r.Forwarded, r.FromInterface, iif = true, w.names[a.LinkIndex], w.names[a.LinkIndex]
	}
	ans, err := w.lookupFrom(q.To, q.Client, iif, replyMark)
	if err != nil {
		r.Error = err.Error()
		return nil
	}
	r.Table, r.Interface = ans.Table, w.names[ans.LinkIndex]
	r.TableName = w.tableName(ans.Table)
	if ans.Gateway.IsValid() {
		r.Gateway = ans.Gateway.String()
	}
	lookupIif := iif
	if lookupIif == "" {
		lookupIif = "lo"
	}
	rule, err := w.ruleFor(packet{src: q.To, dst: q.Client, iif: lookupIif, mark: replyMark}, ans.Table)
	if err != nil {
		return err
	}
	r.Rule = rule
	return nil
}

// trackedMarks reads, from the kernel's rules, the marks symroute's connection tracking gives a connection
// that arrives on name: its request's (the rule "fwmark R iif name lookup main") and its replies' (R without
// the field's top bit). Both are 0 where the interface is not tracked, or the nftables table that sets the marks
// is not loaded.
func (w *world) trackedMarks(name string) (request, reply uint32) {
	for _, r := range w.inv.Rules {
		if r.Iif != name || r.Mark == 0 || r.Table != 254 || r.Mask == 0 {
			continue
		}
		top := uint32(1) << (31 - bits.LeadingZeros32(r.Mask))
		if r.Mark&top == 0 {
			continue
		}
		if !w.hints.Tracked {
			w.notes = append(w.notes, fmt.Sprintf("rule %d selects %s's tracked requests by mark, but nftables table inet symroute, which sets the marks, is not loaded: no connection carries them", r.Priority, name))
			return 0, 0
		}
		return r.Mark, r.Mark &^ top
	}
	return 0, 0
}

func (w *world) sysctlInt(key string) int {
	v, ok, err := w.sys.Read(key)
	if err != nil || !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(v))
	return n
}

func (w *world) tableName(t uint32) string {
	if n, ok := w.hints.TableNames[t]; ok {
		return n
	}
	return routing.TableName(t)
}

// packet is a lookup's selectors, as the rules see them.
type packet struct {
	src, dst netip.Addr
	iif      string
	mark     uint32
}

// ruleFor returns the rule the kernel's answer for p came through: the first, in the kernel's order, that sends
// p to table and finds a route there.
func (w *world) ruleFor(p packet, table uint32) (*Rule, error) {
	r, _, err := w.walk(p, table)
	if err != nil || r == nil {
		return nil, err
	}
	return &Rule{Priority: r.Priority, Selector: r.Selector(), Symroute: w.symroutes(*r)}, nil
}

// walk routes p through the rules and tables as the kernel does, in user space, and returns the rule that
// decides and the answer. With table set it looks for the rule the kernel's own answer came from that table
// through: a rule that selects on more than walk reads (a port, a uid) is then taken to match when its table is
// that one. With table 0 such rules are passed over, with a note. No rule and no error: no rule decides.
func (w *world) walk(p packet, table uint32) (*routing.Rule, routing.Answer, error) {
	rules := slices.Clone(w.inv.Rules)
	slices.SortStableFunc(rules, func(a, b routing.Rule) int { return int(a.Priority) - int(b.Priority) })
	family := routing.FamilyV4
	if p.dst.Is6() {
		family = routing.FamilyV6
	}
	for i, r := range rules {
		if r.Family != family || r.Action != routing.ActionLookup {
			continue
		}
		if r.From.IsValid() && !r.From.Contains(p.src) || r.To.IsValid() && !r.To.Contains(p.dst) ||
			r.Iif != "" && r.Iif != p.iif || (p.mark^r.Mark)&r.Mask != 0 {
			continue
		}
		if table != 0 && r.Table == table && !r.SuppressDefault && !r.Narrowed {
			// The kernel answered from this table, and this rule takes the answer whatever it is: no need to
			// read the table (main can hold a million routes).
			return &rules[i], routing.Answer{}, nil
		}
		rt, bits, found, err := w.best(r.Table, p.dst)
		if err != nil {
			return nil, routing.Answer{}, err
		}
		if !found || r.SuppressDefault && bits == 0 {
			continue
		}
		if r.Narrowed && (table == 0 || r.Table != table) {
			if table == 0 {
				w.notes = append(w.notes, fmt.Sprintf("rule %d selects on more than explain reads (a port, a uid, an output interface) and was passed over", r.Priority))
			}
			continue
		}
		if table != 0 && r.Table != table {
			w.notes = append(w.notes, fmt.Sprintf("by explain's reading of the rules, rule %d (table %s) comes first; the kernel answered from table %s", r.Priority, w.tableName(r.Table), w.tableName(table)))
			return nil, routing.Answer{}, nil
		}
		return &rules[i], routing.Answer{LinkIndex: rt.LinkIndex, Table: r.Table, Gateway: rt.Gateway}, nil
	}
	return nil, routing.Answer{}, nil
}

// routes reads a table once.
func (w *world) routes(table uint32) ([]routing.Route, error) {
	if routes, ok := w.tables[table]; ok {
		return routes, nil
	}
	routes, err := w.k.Routes(table)
	if err == nil {
		w.tables[table] = routes
	}
	return routes, err
}

// best finds the route in table that holds dst with the longest prefix (the lowest metric among equals), and
// that prefix's length.
func (w *world) best(table uint32, dst netip.Addr) (routing.Route, int, bool, error) {
	routes, err := w.routes(table)
	if err != nil {
		return routing.Route{}, 0, false, err
	}
	bestBits, best := -1, routing.Route{}
	for _, rt := range routes {
		bits := -1
		switch {
		case rt.Destination.IsValid() && rt.Destination.Addr().Is4() == dst.Is4() && rt.Destination.Contains(dst):
			bits = rt.Destination.Bits()
		case !rt.Destination.IsValid() && (rt.Family == routing.FamilyV6) == dst.Is6():
			bits = 0
		}
		if bits > bestBits || bits == bestBits && bits >= 0 && rt.Metric < best.Metric {
			bestBits, best = bits, rt
		}
	}
	return best, bestBits, bestBits >= 0, nil
}

// symroutes says whether a rule is symroute's: by the plan where there is a description, else by its place in
// the default priority_range with networkd's protocol, or the follower's protocol.
func (w *world) symroutes(r routing.Rule) bool {
	if w.hints.Owned != nil {
		return w.hints.Owned(r)
	}
	return reservations.DefaultPriorities.Contains(r.Priority) && r.Protocol == 4 || r.Protocol == 83
}

// fix says what makes the reply leave where the request came in: for an interface the description has, the key
// to set at its line; for one it lacks, the interface to describe; and where a rule of another program takes the
// reply first, that rule.
func (w *world) fix(q Question, res Result) string {
	in := res.Request.Interface
	if res.Symmetric {
		return ""
	}
	if in == "" {
		return fmt.Sprintf("the host has no route to %s at all: give the interface its requests come in on a gateway (main's default route or, described, its own table's), or name it with --in", q.Client)
	}
	if res.Reply.Error != "" && res.Request.RPFilter == "accept" {
		return fmt.Sprintf("the host has no route for the reply to %s (%s): give %s a gateway (its table's default route)", q.Client, res.Reply.Error, in)
	}
	if r := res.Reply.Rule; r != nil && !r.Symroute && r.Priority < 32766 && res.Reply.Interface != in {
		return fmt.Sprintf("rule %d (%s lookup %s) is not symroute's and sends the reply out by %s before symroute's rules are asked; move it after priority_range or delete it",
			r.Priority, r.Selector, res.Reply.TableName, res.Reply.Interface)
	}
	link, addr, held := w.holder(q.To)
	onIn := held && link.Name == in
	i, ifc := -1, description.Interface{}
	if h := w.hints.Host; h != nil {
		i = slices.IndexFunc(h.Interfaces, func(x description.Interface) bool { return x.Name == in })
		if i >= 0 {
			ifc = h.Interfaces[i]
		}
	}
	at := func(p report.Path) string {
		pos := w.hints.Host.Pos(p)
		return fmt.Sprintf("%s (line %d)", p, pos.Line)
	}
	if res.Reply.Interface == in && res.Request.RPFilter == "drop" {
		if i >= 0 {
			return fmt.Sprintf("rp_filter drops the request: set rp_filter: loose at %s, or make %s's replies and reverse lookups use its table", at(report.Path{"interfaces", i}), in)
		}
		return fmt.Sprintf("rp_filter drops the request (%s): describe %s so its replies and rp_filter's lookups use its own table, or set its rp_filter loose", res.Request.RPFilterWhy, in)
	}
	switch {
	case i >= 0 && onIn && slices.ContainsFunc(ifc.Addresses, func(p netip.Prefix) bool { return p.Addr() == q.To }):
		return fmt.Sprintf("the description has %s at %s, but the kernel does not route by it: run symroute apply (symroute verify names what is missing)", q.To, at(report.Path{"interfaces", i}))
	case i >= 0 && onIn && !ifc.TrackConnections:
		return fmt.Sprintf("add %s to %s, or set track_connections: true there", addr, at(report.Path{"interfaces", i, "addresses"}))
	case i >= 0 && !ifc.TrackConnections:
		return fmt.Sprintf("set track_connections: true at %s: %s is not an address of %s, so only its connection can send the reply back there", at(report.Path{"interfaces", i}), q.To, in)
	case i >= 0:
		return fmt.Sprintf("%s tracks connections at %s, but the reply does not carry its mark: run symroute apply (symroute verify names what is missing)", in, at(report.Path{"interfaces", i}))
	}
	gw := w.gatewayOf(in, q.To.Is4())
	key := "gateway"
	if !q.To.Is4() {
		key = "gateway6"
	}
	if onIn {
		return fmt.Sprintf("describe %s: {name: %s, addresses: [%s], %s: %s}, then symroute apply", in, in, addr, key, gw)
	}
	return fmt.Sprintf("describe %s with track_connections: true: {name: %s, addresses: [...], %s: %s, track_connections: true}, then symroute apply", in, in, key, gw)
}

// gatewayOf names the router of a link, from a default route through it in a table a rule looks up (main, local
// and default only when the walk read them already), or says to find it.
func (w *world) gatewayOf(name string, v4 bool) string {
	for _, r := range w.inv.Rules {
		if r.Table != 0 && r.Table < 253 || r.Table > 255 {
			w.routes(r.Table) // a table that cannot be read names no router
		}
	}
	for _, routes := range w.tables {
		for _, r := range routes {
			if !r.Destination.IsValid() && w.names[r.LinkIndex] == name && r.Gateway.IsValid() && r.Gateway.Is4() == v4 {
				return r.Gateway.String()
			}
		}
	}
	return "<its router>"
}

// Text is the answer for a person: short enough to paste into a ticket.
func (r Result) Text() string {
	var b strings.Builder
	how := map[string]string{"flag": "as --in says", "address": "the link that holds " + r.To, "route": "the link the kernel routes " + r.Client + " through"}
	what := r.Client + " -> " + r.To
	if r.Port != 0 {
		what += fmt.Sprintf(" %s port %d", r.Proto, r.Port)
	}
	fmt.Fprintf(&b, "request  %s arrives on %s (%s)", what, r.Request.Interface, how[r.Request.InterfaceFrom])
	if r.Request.Mark != "" {
		fmt.Fprintf(&b, ", mark %s", r.Request.Mark)
	}
	fmt.Fprintf(&b, "\n         rp_filter %s: %s (%s)\n", r.Request.RPFilterMode, r.Request.RPFilter, r.Request.RPFilterWhy)
	from := ""
	if r.Reply.Forwarded {
		from = ", forwarded from " + r.Reply.FromInterface
	}
	if r.Reply.Mark != "" {
		from += ", mark " + r.Reply.Mark
	}
	fmt.Fprintf(&b, "reply    %s -> %s%s\n", r.To, r.Client, from)
	switch {
	case r.Reply.Error != "":
		fmt.Fprintf(&b, "         no route: %s\n", r.Reply.Error)
	default:
		rule := "a rule explain could not single out"
		if r.Reply.Rule != nil {
			rule = fmt.Sprintf("rule %d (%s)", r.Reply.Rule.Priority, r.Reply.Rule.Selector)
		}
		fmt.Fprintf(&b, "         %s, table %s\n", rule, r.Reply.TableName)
		via := ""
		if r.Reply.Gateway != "" {
			via = " via " + r.Reply.Gateway
		}
		fmt.Fprintf(&b, "         leaves by %s%s\n", r.Reply.Interface, via)
	}
	switch {
	case r.Symmetric:
		fmt.Fprintf(&b, "verdict  symmetric: the reply leaves by %s, where the request came in\n", r.Reply.Interface)
	case r.Request.RPFilter == "drop":
		fmt.Fprintf(&b, "verdict  dropped: rp_filter on %s drops the request before anything answers it\n", r.Request.Interface)
	default:
		fmt.Fprintf(&b, "verdict  asymmetric: the request comes in on %s, the reply leaves by %s\n", r.Request.Interface, orNothing(r.Reply.Interface))
	}
	if r.Fix != "" {
		fmt.Fprintf(&b, "fix      %s\n", r.Fix)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note     %s\n", n)
	}
	return b.String()
}

func orNothing(s string) string {
	if s == "" {
		return "nowhere"
	}
	return s
}
