package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/symroute/symroute/internal/edges/networkd"
)

// defaultQuiet is how long a changed link may stay silent after a reload before its "configured" is believed:
// networkd announces a reconfiguration within about 25 ms (measured on 252), and says nothing when the new file
// configures the link as before.
const defaultQuiet = 250 * time.Millisecond

// errTakeUpWait marks a wait that ended without networkd configuring every link (as opposed to networkd or the
// kernel not answering at all).
var errTakeUpWait = errors.New("waiting for networkd")

// linkWait follows one link while waiting.
type linkWait struct {
	name   string
	index  int
	state  string
	active bool // networkd has been seen working on it since the reload
	drop   bool // no file configures it any more: done once networkd reports it unmanaged
	done   bool
}

// waitLinks waits until networkd has configured every managed link, following its announcements (events) and
// polling DescribeLink every Poll. A changed link counts only once networkd has been seen taking it up again
// (right after a reload, DescribeLink may still report the old "configured"), or has stayed quiet past e.quiet. After
// a restart every link starts over, and DescribeLink tells the truth. A missing link is named at once and not
// waited for; a link that fails, or is not configured by the deadline, is an error. One line per state change.
func (e *Engine) waitLinks(ctx context.Context, events <-chan networkd.LinkEvent, changed map[string]bool, managed []string, restarted bool) error {
	start := time.Now()
	deadline := start.Add(e.opts.Timeout)
	var links []*linkWait
	byIndex := map[int]*linkWait{}
	// A changed link that no file configures any more must be seen unmanaged: until networkd has dropped what it
	// configured there, a stale rule deleted now could be its, or come back.
	isManaged := map[string]bool{}
	for _, name := range managed {
		isManaged[name] = true
	}
	var dropped []string
	for name := range changed {
		if !isManaged[name] {
			dropped = append(dropped, name)
		}
	}
	sort.Strings(dropped)
	for _, name := range append(append([]string(nil), managed...), dropped...) {
		if !restarted && !changed[name] {
			continue // a reload leaves a link whose files did not change alone; verify checks its state
		}
		index, ok, err := e.deps.Kernel.LinkIndex(name)
		if err != nil {
			return err
		}
		if !ok {
			e.logf("%s: no such link; networkd configures it when it appears", name)
			continue
		}
		l := &linkWait{name: name, index: index, drop: !isManaged[name]}
		links = append(links, l)
		byIndex[index] = l
	}
	needsWork := func(l *linkWait) bool { return changed[l.name] && !restarted }
	note := func(l *linkWait, s string) error {
		if s == l.state {
			return nil
		}
		l.state = s
		if s != "configured" {
			l.active = true
		}
		e.logf("%s: %s (%d ms)", l.name, s, time.Since(start).Milliseconds())
		if s == "failed" && !l.drop {
			return fmt.Errorf("%w: networkd failed to configure %s; see journalctl -u systemd-networkd", errTakeUpWait, l.name)
		}
		return nil
	}
	settle := func(l *linkWait) {
		switch {
		case l.drop:
			l.done = l.state == "unmanaged" || l.state == "linger"
		case l.state == "configured" && (!needsWork(l) || l.active || time.Since(start) > e.quiet):
			l.done = true
		}
	}
	tick := time.NewTicker(e.opts.Poll)
	defer tick.Stop()
	poll := func() error {
		for _, l := range links {
			if l.done {
				continue
			}
			desc, err := e.deps.Networkd.DescribeLink(ctx, l.index)
			if err != nil {
				continue // a restarted networkd may not know the link yet
			}
			// Right after a reload a changed link may still show its old "configured": only believe it as
			// described in settle.
			if err := note(l, desc.AdministrativeState); err != nil {
				return err
			}
			settle(l)
		}
		return nil
	}
	if err := poll(); err != nil { // the links the change did not touch are done at once
		return err
	}
	for {
		pending := 0
		for _, l := range links {
			if !l.done {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var names []string
			for _, l := range links {
				if !l.done {
					names = append(names, fmt.Sprintf("%s (%s)", l.name, orUnknown(l.state)))
				}
			}
			sort.Strings(names)
			return fmt.Errorf("%w: networkd has not configured %s within %v", errTakeUpWait, strings.Join(names, ", "), e.opts.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if l := byIndex[ev.Index]; l != nil {
				if err := note(l, ev.State); err != nil {
					return err
				}
				settle(l)
			}
		case <-tick.C:
			if err := poll(); err != nil {
				return err
			}
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "no answer from networkd"
	}
	return s
}
