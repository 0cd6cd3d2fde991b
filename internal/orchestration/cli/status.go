package cli

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/status"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/orchestration/live"
	"github.com/symroute/symroute/internal/orchestration/state"
)

var statusCommand = &command{
	name:    "status",
	args:    "[INTERFACE]",
	arg:     interfaceNames,
	summary: "show what routes each interface's replies, and whether it holds (read-only)",
	long: "Read-only. Shows, per interface, the link's state, its addresses (dynamic ones with the time their lease " +
		"has left), the routing tables its rules look up with their number of routes, the rules that select it " +
		"(by input interface, by one of its addresses as source, or by looking up its table), the effective " +
		"rp_filter and why, the .network file and drop-ins networkd applied, and a verdict. With a description (" +
		DefaultDescription + " under --root, or -c FILE) it shows the described interfaces and the verdict verify " +
		"reaches: ok, or each finding; without one it shows every link but lo, and the verdict is \"no " +
		"description\". INTERFACE shows that one alone. -o json and -o yaml print the same for machines. Text is " +
		"at most 100 columns wide and coloured only on a terminal, never with NO_COLOR set. Exits 0 once the state " +
		"is read, whatever the verdict (verify's exit status is the check), 3 when it cannot be read.",
	examples: []example{
		{"What routes this host's replies, interface by interface?", "symroute status"},
		{"One interface", "symroute status eth-b"},
		{"Each interface's table and rules, for a script", "symroute status -o json | jq '.interfaces[] | {name, tables, rules}'"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var c common
		var output string
		descriptionFlags(fs, &c, "/")
		fs.StringVarP(&output, "output", "o", "text", "output format")
		describeValue(fs, "output", "FORMAT", words(status.Formats...))
		return func(in input) int {
			c.stdin, c.cmd = in.stdin, in.flags.Name()
			return runStatus(c, output, in)
		}
	},
}

func runStatus(c common, output string, in input) int {
	described := true
	if !in.flags.Changed("config") {
		// The default description is the system's under --root: a root without one is a host symroute does not
		// manage, and status shows every link.
		c.config = filepath.Join(c.root, DefaultDescription)
		if _, err := os.Stat(c.config); errors.Is(err, fs.ErrNotExist) {
			described = false
		}
	}
	ctx := context.Background()
	var p *plan.Plan
	var res *drift.Result
	src, closeSrc, err := live.Sources(ctx, "")
	if err != nil {
		eprintf(in.stderr, "symroute status: %v\n", err)
		return ExitSystem
	}
	defer closeSrc()
	if described {
		// As verify: networkd's answer is compared, so only the links' facts go into the matching.
		c.host = true
		l, files, code, ok := pipeline(c, in.stderr)
		if !ok {
			return code
		}
		r, err := verifyLive(ctx, c, l, files, src, in.stderr)
		if err != nil {
			eprintf(in.stderr, "symroute status: cannot read the live state: %v\n", err)
			return ExitSystem
		}
		p, res = l.plan, &r
	}
	links, ok := src.Kernel.(state.LinkLister)
	if !ok {
		eprintf(in.stderr, "symroute status: the kernel reader cannot list links\n")
		return ExitSystem
	}
	var system fs.FS
	if root, err := rootfs.Open(c.root); err == nil {
		defer root.Close()
		system = root.ReadFS()
	}
	snap, err := state.Status(ctx, p, res, src, links, system)
	if err != nil {
		eprintf(in.stderr, "symroute status: cannot read the live state: %v\n", err)
		return ExitSystem
	}
	if described {
		snap.Description = c.shown()
	}
	rep := status.Build(snap)
	if len(in.args) == 1 {
		one, ok := rep.Only(in.args[0])
		if !ok {
			what := "the described interfaces are"
			if !described {
				what = "the links are"
			}
			return usageError(in.stderr, "status", "no interface %s; %s %s", report.Quote(in.args[0]), what, strings.Join(rep.Names(), ", "))
		}
		rep = one
	}
	out, err := status.Render(rep, output, output == "text" && colorFor(in.stdout))
	if err != nil {
		eprintf(in.stderr, "symroute status: %v\n", err)
		return ExitSystem
	}
	in.stdout.Write(out)
	if output == "text" {
		for _, n := range rep.Notes {
			eprintf(in.stderr, "symroute status: note: %s\n", n)
		}
	}
	return ExitOK
}

// colorFor says whether text written to w may be coloured: w is a terminal and NO_COLOR is not set
// (https://no-color.org; set to anything, even empty, it turns colour off).
func colorFor(w io.Writer) bool {
	if _, set := os.LookupEnv("NO_COLOR"); set {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	// What golang.org/x/term's IsTerminal asks, without the module: does the descriptor take terminal ioctls?
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
