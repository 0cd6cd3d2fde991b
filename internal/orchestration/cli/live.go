package cli

import (
	"context"

	"golang.org/x/sys/unix"

	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/edges/networkd"
	"github.com/symroute/symroute/internal/orchestration/live"
)

// liveDeps, processOf and alive are the live package's: the agent's Host builds its engine the same way.
var (
	liveDeps  = live.Deps
	processOf = live.Process
	alive     = live.Alive
	liveLinks = live.Links
)

// stopProcess asks a recorded process (a try's watcher) to end, if it is still that process.
func stopProcess(p *record.Process) {
	if p != nil && alive(*p) {
		unix.Kill(p.PID, unix.SIGTERM)
	}
}

// appliedNow asks networkd which .network file it applies to each link now; nil when networkd does not answer
// within busTimeout (not running, or not on this bus): nothing to compare then.
func appliedNow() map[string]string {
	ctx, cancel := context.WithTimeout(context.Background(), busTimeout)
	defer cancel()
	client, err := networkd.Dial(ctx, "")
	if err != nil {
		return nil
	}
	defer client.Close()
	links, err := client.DescribeLinks(ctx)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, l := range links {
		if l.NetworkFile != "" {
			out[l.Name] = l.NetworkFile
		}
	}
	return out
}
