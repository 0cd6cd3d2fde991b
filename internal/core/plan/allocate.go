package plan

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/reservations"
)

// allocator chooses tables and priorities by position, so appending an interface never renumbers another:
//
//	table of interfaces[i]          = table_range.min + i
//	rule priority of interfaces[i]  = priority_range.min + 10 x (i + 1)
//	priority of the cluster rules   = priority_range.min, ahead of every source rule
//
// A pinned value replaces the allocated one for that interface and must not collide with anything.
type allocator struct {
	h *description.Host
	r *report.Report
}

func (a *allocator) errorf(p report.Path, format string, args ...any) {
	a.r.Add(report.Error, p, a.h.Pos(p), format, args...)
}

// explain describes the claims a value falls into, and lists the ways out that the claiming components offer.
func explain(cs []reservations.Conflict, what string) (claims string, moves []string) {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.Describe(what))
		if c.Component.MoveClaim != "" {
			moves = append(moves, c.Component.MoveClaim)
		}
	}
	return strings.Join(parts, "; "), moves
}

// ways joins remedies into "a, b, or c".
func ways(options ...string) string {
	switch len(options) {
	case 1:
		return options[0]
	case 2:
		return options[0] + " or " + options[1]
	}
	return strings.Join(options[:len(options)-1], ", ") + ", or " + options[len(options)-1]
}

func (a *allocator) checkRanges() {
	if cs := reservations.TableConflicts(a.h.Components, a.h.Tables); len(cs) > 0 {
		claims, moves := explain(cs, "tables")
		a.errorf(report.Path{"table_range"}, "%s overlaps what others claim: %s. %s",
			a.h.Tables, claims, ways(append([]string{fmt.Sprintf("Move table_range clear of them (the default %s avoids every known claim)", reservations.DefaultTables)}, moves...)...))
	}
	if cs := reservations.PriorityConflicts(a.h.Components, a.h.Priorities); len(cs) > 0 {
		claims, moves := explain(cs, "priorities")
		a.errorf(report.Path{"priority_range"}, "%s overlaps what others claim: %s. %s",
			a.h.Priorities, claims, ways(append([]string{fmt.Sprintf("Move priority_range clear of them (the default %s avoids every known claim)", reservations.DefaultPriorities)}, moves...)...))
	}
}

func (a *allocator) table(i int) (uint32, string) {
	ifc := a.h.Interfaces[i]
	if ifc.Table != nil {
		return *ifc.Table, fmt.Sprintf("pinned by interfaces[%d].table", i)
	}
	t := uint64(a.h.Tables.Min) + uint64(i)
	if t > uint64(a.h.Tables.Max) {
		a.errorf(report.Path{"interfaces", i}, "table_range %s has no table left for interface %d; widen table_range or pin table: for it", a.h.Tables, i)
		return 0, ""
	}
	return uint32(t), fmt.Sprintf("table_range.min %d + position %d", a.h.Tables.Min, i)
}

func (a *allocator) priority(i int) (uint32, string) {
	ifc := a.h.Interfaces[i]
	if ifc.Priority != nil {
		return *ifc.Priority, fmt.Sprintf("pinned by interfaces[%d].priority", i)
	}
	pr := uint64(a.h.Priorities.Min) + PriorityStep*uint64(i+1)
	if pr > uint64(a.h.Priorities.Max) {
		a.errorf(report.Path{"interfaces", i}, "priority_range %s has no priority left for interface %d (each takes a step of %d); widen priority_range or pin priority: for it",
			a.h.Priorities, i, PriorityStep)
		return 0, ""
	}
	return uint32(pr), fmt.Sprintf("priority_range.min %d + %d x (position %d + 1)", a.h.Priorities.Min, PriorityStep, i)
}

// checkCollisions refuses pinned values that land on the kernel's ids, a declared component's claim, another
// interface's value, or, for priorities, at or ahead of the cluster rules they must follow.
func (a *allocator) checkCollisions(p *Plan) {
	tables := map[uint32]int{}
	prios := map[uint32]int{}
	tracks := slices.ContainsFunc(p.Interfaces, func(i Interface) bool { return i.TrackConnections })
	for i, ifc := range p.Interfaces {
		if ifc.Table != 0 {
			tp := report.Path{"interfaces", i, "table"}
			if ifc.Interface.Table != nil {
				if cs := reservations.TableConflicts(a.h.Components, reservations.Range{Min: ifc.Table, Max: ifc.Table}); len(cs) > 0 {
					claims, moves := explain(cs, "tables")
					a.errorf(tp, "table %d is taken: %s. %s", ifc.Table, claims,
						ways(append([]string{"Pick a table outside it", fmt.Sprintf("remove table: to let symroute allocate one from table_range %s", a.h.Tables)}, moves...)...))
				}
			}
			if j, dup := tables[ifc.Table]; dup {
				// Report at the pinned value: that is the one the user can change.
				at, with := pinnedSide(i, j, ifc.Interface.Table != nil)
				a.errorf(report.Path{"interfaces", at, "table"}, "table %d is also %s's table; give each interface its own table", ifc.Table, label(p, with))
			} else {
				tables[ifc.Table] = i
			}
		}
		if ifc.Priority != 0 {
			pp := report.Path{"interfaces", i, "priority"}
			if ifc.Interface.Priority != nil {
				if cs := reservations.PriorityConflicts(a.h.Components, reservations.Range{Min: ifc.Priority, Max: ifc.Priority}); len(cs) > 0 {
					claims, moves := explain(cs, "priorities")
					a.errorf(pp, "priority %d is taken: %s. %s", ifc.Priority, claims,
						ways(append([]string{"Pick a priority outside it", fmt.Sprintf("remove priority: to let symroute allocate one from priority_range %s", a.h.Priorities)}, moves...)...))
				}
				if tracks && ifc.Priority <= p.ClusterPriority+markTableOffset {
					a.errorf(pp, "priority %d is not after the track_connections rules at %d and %d; a reply must find its connection's mark before its source address, so pin a priority above %d",
						ifc.Priority, p.ClusterPriority+markMainOffset, p.ClusterPriority+markTableOffset, p.ClusterPriority+markTableOffset)
				} else if len(p.ClusterRules) > 0 && ifc.Priority <= p.ClusterPriority {
					a.errorf(pp, "priority %d is not after the cluster_cidrs rules at %d; those must come first so replies to pods keep using main, so pin a priority above %d",
						ifc.Priority, p.ClusterPriority, p.ClusterPriority)
				}
			}
			if j, dup := prios[ifc.Priority]; dup {
				at, with := pinnedSide(i, j, ifc.Interface.Priority != nil)
				a.errorf(report.Path{"interfaces", at, "priority"}, "priority %d is also %s's rule priority; give each interface its own", ifc.Priority, label(p, with))
			} else {
				prios[ifc.Priority] = i
			}
		}
	}
	a.checkLeaseRules(p)
}

// checkLeaseRules refuses a dynamic interface's lease rule (counted down from priority_range.max) that lands on
// or ahead of any interface's source rules: it would take the replies of the interfaces after it.
func (a *allocator) checkLeaseRules(p *Plan) {
	last, lastAt := uint32(0), -1
	for i, ifc := range p.Interfaces {
		if ifc.Priority > last {
			last, lastAt = ifc.Priority, i
		}
	}
	for i, ifc := range p.Interfaces {
		for _, r := range ifc.LeaseRules {
			if r.Priority <= last || uint64(r.Priority) < uint64(a.h.Priorities.Min)+markTableOffset+1 {
				a.errorf(r.Origin, "the rule that gives the host the routes of %s's lease goes at priority_range.max %d - position %d = %d, which is not after %s's rules at %d; widen priority_range or pin lower priorities",
					label(p, i), a.h.Priorities.Max, i, r.Priority, label(p, lastAt), last)
			}
		}
	}
}

// pinnedSide picks which of two colliding interfaces to report: i when its value is pinned, else j (whose value
// then must be the pinned one, since allocated values never collide with each other).
func pinnedSide(i, j int, iPinned bool) (at, with int) {
	if iPinned {
		return i, j
	}
	return j, i
}

func label(p *Plan, i int) string {
	if name := p.Interfaces[i].Name; name != "" {
		return name
	}
	return fmt.Sprintf("interfaces[%d]", i)
}

// marks chooses the fwmark bits of track_connections and gives each tracked interface its value within them. The
// field is MarkBits wide unless mark_mask pins it, clear of every declared component's marks. Its top bit flags a
// request as it arrives on its own interface (so the rule routing requests by main takes no reply that comes back
// in there); the bits below hold the interface's value, position + 1 in the description, as tables are allocated,
// so adding, removing or tracking another interface changes no interface's mark (removing one from the middle
// renumbers those after it, as for tables).
func (a *allocator) marks(p *Plan) {
	var tracked []int
	for i, ifc := range p.Interfaces {
		if ifc.TrackConnections {
			tracked = append(tracked, i)
		}
	}
	if len(tracked) == 0 {
		return
	}
	if pinned := a.h.MarkMask; pinned != nil {
		mp := report.Path{"mark_mask"}
		ok := true
		if cs := reservations.MarkConflicts(a.h.Components, *pinned); len(cs) > 0 {
			var claims []string
			for _, c := range cs {
				claims = append(claims, c.Describe())
			}
			way := "Pick bits none of them uses"
			if free, found := reservations.FreeMarkMask(a.h.Components, MarkBits); found {
				way = fmt.Sprintf("Pick bits none of them uses (0x%x is free), or remove mark_mask: to let symroute choose", free)
			}
			a.errorf(mp, "0x%x shares bits with marks others set or compare: %s. %s", *pinned, strings.Join(claims, "; "), way)
			ok = false
		}
		if bits.OnesCount32(*pinned) < 2 {
			a.errorf(mp, "0x%x has one bit; track_connections needs at least two: one for the interface's value, one to tell a request from a reply", *pinned)
			ok = false
		}
		if !ok {
			return
		}
		p.MarkMask, p.MarkWhy = *pinned, "pinned by mark_mask"
	} else {
		avoid := a.h.Components
		for _, name := range reservations.AlwaysAvoidMarks {
			if c, ok := reservations.Lookup(name); ok && !slices.ContainsFunc(avoid, func(d *reservations.Component) bool { return d.Name == name }) {
				avoid = append(avoid[:len(avoid):len(avoid)], &c)
			}
		}
		m, found := reservations.FreeMarkMask(avoid, MarkBits)
		if !found {
			var claims []string
			for _, c := range reservations.MarkConflicts(a.h.Components, 0xffffffff) {
				claims = append(claims, c.Describe())
			}
			a.errorf(report.Path{"interfaces", tracked[0], "track_connections"}, "no %d contiguous fwmark bits are free of the declared components' marks: %s. Pin mark_mask: to at least two contiguous bits the node leaves unused",
				MarkBits, strings.Join(claims, "; "))
			return
		}
		p.MarkMask, p.MarkWhy = m, fmt.Sprintf("the first %d bits from bit 12 up, then below, that no declared component, kube-proxy or Calico uses", MarkBits)
	}
	if end := uint64(a.h.Priorities.Min) + markTableOffset; end > uint64(a.h.Priorities.Max) {
		a.errorf(report.Path{"priority_range"}, "%s leaves no room for the track_connections rules at min + %d and min + %d; widen priority_range", a.h.Priorities, markMainOffset, markTableOffset)
		return
	}
	low := bits.TrailingZeros32(p.MarkMask)
	most := p.ValueMask() >> low // the largest value below the request bit
	for _, i := range tracked {
		v := uint32(i + 1)
		if v > most {
			a.errorf(report.Path{"interfaces", i, "track_connections"}, "interfaces[%d] has no value left in fwmark bits 0x%x, which number interfaces 1 to %d by position; pin a wider mark_mask, or move the interface up the list",
				i, p.MarkMask, most)
			continue
		}
		p.Interfaces[i].Mark = v << low
		markRules(p, &p.Interfaces[i], i)
	}
}
