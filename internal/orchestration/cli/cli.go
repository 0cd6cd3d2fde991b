// Package cli is symroute's command line: it parses flags, runs one command and maps the outcome to an exit
// status. It is the only place that prints.
package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/symroute/symroute/internal/orchestration/live"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/description"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/plan"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/core/reservations"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/lock"
	"github.com/symroute/symroute/internal/edges/recordstore"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/schemas"
)

// Exit statuses, part of symroute's contract with scripts and packages.
const (
	ExitOK      = 0
	ExitFailed  = 1 // verification or apply failed
	ExitInvalid = 2 // invalid description or usage
	ExitSystem  = 3 // the system could not be read or written
)

// DefaultDescription is where symroute looks for the host description.
const DefaultDescription = "/etc/symroute/host.yaml"

// Version is set at build time with -ldflags "-X github.com/symroute/symroute/internal/orchestration/cli.Version=...".
var Version = "dev"

// common are the flags every description-reading command takes.
type common struct {
	config string // a path, or "-" for standard input
	root   string
	strict bool
	quiet  bool
	stdin  io.Reader
	cmd    string // the command's name, for messages
	// host says the command runs against this host, not a root for another machine: the running links' MACs,
	// kind and driver decide the .network file matching, and, with askNetworkd, networkd's own answer for the
	// file each link takes now is held against symroute's choice.
	host, askNetworkd bool
}

// onHost is the view of the running host every command takes whose root is the running system's.
func (c *common) onHost() {
	if c.root == "/" {
		c.host, c.askNetworkd = true, true
	}
}

// stdinName names standard input in messages, as compilers do.
const stdinName = "<stdin>"

// shown is how messages name the description.
func (c common) shown() string {
	if c.config == "-" {
		return stdinName
	}
	return c.config
}

// descriptionFlags defines the flags of every command that reads the description; root is --root's default.
func descriptionFlags(fs *pflag.FlagSet, c *common, root string) {
	fs.StringVarP(&c.config, "config", "c", DefaultDescription, "the host description; - reads it from standard input")
	describeValue(fs, "config", "FILE", files)
	fs.StringVar(&c.root, "root", root, "the root of the system whose files symroute reads and writes: / on a host, a directory for CI and images")
	describeValue(fs, "root", "DIR", directories)
	fs.BoolVar(&c.strict, "strict", false, "treat warnings as errors")
}

// quietFlag defines --quiet, for the commands that print what they are doing.
func quietFlag(fs *pflag.FlagSet, quiet *bool) {
	fs.BoolVarP(quiet, "quiet", "q", false, "print only errors and the final result line")
}

// progressTo is where a command prints what it is doing: w, or nowhere when quiet.
func progressTo(w io.Writer, quiet bool) io.Writer {
	if quiet {
		return io.Discard
	}
	return w
}

// readsDescription is the runner of a command that reads the description (its entry takes args "[FILE]"): run
// gets the description named by FILE, by -c, or the default.
func readsDescription(c *common, run func(in input) int) runner {
	return func(in input) int {
		if len(in.args) == 1 {
			if in.flags.Changed("config") && in.args[0] != c.config {
				return usageError(in.stderr, in.flags.Name(), "the description is named twice, as -c %s and as %s; name it once", report.Quote(c.config), report.Quote(in.args[0]))
			}
			c.config = in.args[0]
		}
		c.stdin, c.cmd = in.stdin, in.flags.Name()
		return run(in)
	}
}

// loaded is a description that passed validation, with its plan.
type loaded struct {
	source string
	data   []byte // the description's text, to show the lines problems are on
	plan   *plan.Plan
	rep    report.Report
}

// load reads, validates and plans the description, printing every problem. ok is false when symroute must stop,
// with the exit status to use.
func load(c common, stderr io.Writer) (l loaded, status int, ok bool) {
	data, err := readDescription(c)
	if err != nil {
		eprintf(stderr, "symroute: cannot read the host description: %s\n", report.Printable(err.Error()))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			eprintf(stderr, "symroute: write one (see `symroute schema`) or name it: symroute %s FILE\n", c.cmd)
			return l, ExitInvalid, false
		case errors.Is(err, rootfs.ErrTooLarge) && c.config == "-":
			eprintf(stderr, "symroute: a description is at most %d bytes (1 MiB); check what is piped in\n", description.MaxSize)
			return l, ExitInvalid, false
		case errors.Is(err, rootfs.ErrTooLarge):
			eprintf(stderr, "symroute: a description is at most %d bytes (1 MiB); check that the right file is named\n", description.MaxSize)
			return l, ExitInvalid, false
		case errors.Is(err, rootfs.ErrNotRegular):
			eprintf(stderr, "symroute: name a regular file with -c FILE\n")
			return l, ExitInvalid, false
		}
		return l, ExitSystem, false
	}
	l.source, l.data = generator.DescriptionLabel(c.config), data
	host, rep := description.Parse(data)
	switch {
	case !rep.HasErrors(false):
		var planRep report.Report
		l.plan, planRep = plan.Build(host)
		rep.Merge(planRep)
	case host != nil:
		rep.Merge(plan.CheckRanges(host))
	}
	l.rep = rep
	return l, ExitOK, true
}

// readDescription reads the description from its file, or from standard input for "-", at most
// description.MaxSize bytes either way.
func readDescription(c common) ([]byte, error) {
	if c.config != "-" {
		return rootfs.ReadFile(c.config, description.MaxSize)
	}
	data, err := io.ReadAll(io.LimitReader(c.stdin, description.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("standard input: %w", err)
	}
	if len(data) > description.MaxSize {
		return nil, fmt.Errorf("standard input: %w: more than the %d bytes symroute reads", rootfs.ErrTooLarge, description.MaxSize)
	}
	return data, nil
}

// stopOnReport prints the report (its errors only, when quiet) and says whether it stops the run.
func stopOnReport(rep report.Report, l loaded, c common, stderr io.Writer) bool {
	shown := rep
	if c.quiet && !c.strict {
		shown = rep.Only(report.Error)
	}
	shown.Write(stderr, c.shown(), l.data, c.strict)
	if rep.HasErrors(c.strict) {
		errs, warns := rep.Count(report.Error), rep.Count(report.Warning)
		if c.strict {
			errs, warns = errs+warns, 0
		}
		eprintf(stderr, "symroute: %s: %d error(s), %d warning(s); nothing was written or changed\n", c.shown(), errs, warns)
		return true
	}
	return false
}

// pipeline is the one way every command that reads the description reads it, so check says exactly what
// generate, apply, try and verify would: load, validate and plan it, render the files against the root's own
// (none without a root), and print every problem once, in the order of the file. ok is false when the command
// must stop, with the exit status to use.
func pipeline(c common, stderr io.Writer) (l loaded, files []fileset.File, status int, ok bool) {
	if l, status, ok = load(c, stderr); !ok {
		return l, nil, status, false
	}
	if !l.rep.HasErrors(false) {
		var genRep report.Report
		var err error
		if files, genRep, err = generateFiles(l, c); err != nil {
			eprintf(stderr, "symroute: %v\n", err)
			return l, nil, ExitSystem, false
		}
		l.rep.Merge(genRep)
	}
	if stopOnReport(l.rep, l, c, stderr) {
		return l, nil, ExitInvalid, false
	}
	return l, files, ExitOK, true
}

func generateFiles(l loaded, c common) ([]fileset.File, report.Report, error) {
	var system fs.FS
	if c.root != "" {
		root, err := rootfs.Open(c.root)
		if err != nil {
			return nil, report.Report{}, err
		}
		defer root.Close()
		system = root.ReadFS()
	}
	opts := generator.Options{Source: l.source, Root: system}
	if c.host {
		opts.Links = liveLinks(l.plan)
	}
	files, rep, err := generator.Generate(l.plan, opts)
	if err == nil && c.askNetworkd && !rep.HasErrors(false) {
		if applied := appliedNow(); applied != nil {
			generator.CheckApplied(l.plan, files, applied, &rep)
		}
	}
	return files, rep, err
}

var checkCommand = &command{
	name:    "check",
	args:    "[FILE]",
	arg:     files,
	summary: "validate the description and show the tables and priorities chosen, and why",
	long: "Reads the host description, checks every value and how they fit together, renders the files against " +
		"--root's (this host's, /, unless told otherwise) as generate and apply do, and prints the table and rule " +
		"priority each interface gets, and why: what check accepts, generate and apply accept on the same root. " +
		"Every problem is reported at once, with its line, column and path in the description. Nothing is written.",
	examples: []example{
		{"Check the description at " + DefaultDescription, "symroute check"},
		{"Check a description in CI against the files of the image it is for", "symroute check fleet/web/host.yaml --root fleet/web/root"},
		{"Check a description another tool writes, from standard input", "envsubst < host.yaml.in | symroute check -"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var c common
		descriptionFlags(fs, &c, "/")
		quietFlag(fs, &c.quiet)
		return readsDescription(&c, func(in input) int { return check(c, in) })
	},
}

func check(c common, in input) int {
	c.onHost()
	l, _, status, ok := pipeline(c, in.stderr)
	if !ok {
		return status
	}
	printAllocation(progressTo(in.stdout, c.quiet), l.plan)
	fmt.Fprintf(in.stdout, "symroute check: %s is valid: %d interface(s), %d warning(s)\n", report.Printable(c.shown()), len(l.plan.Interfaces), l.rep.Count(report.Warning))
	return ExitOK
}

var generateCommand = &command{
	name:    "generate",
	args:    "[FILE]",
	arg:     files,
	summary: "write the networkd, sysctl.d and iproute2 files under --root (default /)",
	long: "Renders the description and writes symroute's files under --root: only those whose content changed, each " +
		"atomically, and removes symroute's own files the description no longer needs. It neither reloads networkd " +
		"nor applies sysctls; apply does. --diff prints the change as a unified diff and writes nothing; it exits 1 " +
		"when something would change and 0 when nothing would, so it can gate CI. --format " +
		"butane, ignition or cloud-init prints a provisioning document that writes the same files at first boot; " +
		"it reads no root's files unless --root is given.",
	examples: []example{
		{"Show what would change on this host, writing nothing", "symroute generate --diff"},
		{"Fail a CI job when a committed root is out of date with its description", "symroute generate fleet/web/host.yaml --root fleet/web/root --diff"},
		{"Write a host class's files into a directory kept in git", "symroute generate fleet/web/host.yaml --root fleet/web/root"},
		{"A Butane config for Flatcar", "symroute generate host.yaml --format butane > symroute.bu"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var c common
		var diff bool
		var format string
		descriptionFlags(fs, &c, "/")
		quietFlag(fs, &c.quiet)
		fs.BoolVar(&diff, "diff", false, "print what would change as a unified diff and write nothing; exit 1 when something would change")
		fs.StringVar(&format, "format", string(generator.FormatFiles), "files (write under --root), or a provisioning document to print: butane, ignition or cloud-init")
		var formats []string
		for _, f := range generator.Formats {
			formats = append(formats, string(f))
		}
		describeValue(fs, "format", "FORMAT", words(formats...))
		return readsDescription(&c, func(in input) int { return generate(c, diff, generator.Format(format), in) })
	},
}

func generate(c common, diff bool, format generator.Format, in input) int {
	stdout, stderr := in.stdout, in.stderr
	if format != generator.FormatFiles {
		// A provisioning document describes a machine that does not exist yet: read another root's .network
		// files only when asked to with --root.
		if !in.flags.Changed("root") {
			c.root = ""
		}
		if diff {
			return usageError(stderr, "generate", "--diff compares with files under --root; it does not go with --format %s", format)
		}
	}
	c.onHost()
	l, files, status, ok := pipeline(c, stderr)
	if !ok {
		return status
	}
	if format != generator.FormatFiles {
		doc, err := generator.Encode(files, format, l.source)
		if err != nil {
			eprintf(stderr, "symroute: %v\n", err)
			return ExitSystem
		}
		stdout.Write(doc)
		return ExitOK
	}
	if !diff {
		// A fleet's CI runs generate --root into a directory of its own, new for a new host class.
		if err := os.MkdirAll(c.root, 0o755); err != nil {
			eprintf(stderr, "symroute: %v; nothing was written\n", err)
			return ExitSystem
		}
	}
	root, err := rootfs.Open(c.root)
	if err != nil {
		eprintf(stderr, "symroute: %v; nothing was written\n", err)
		return ExitSystem
	}
	defer root.Close()
	if !diff {
		// The same lock as apply: two runs on one root must not interleave their files.
		release, ok := lockRoot(context.Background(), "generate", root, lock.DefaultWait, progressTo(stdout, c.quiet), stderr)
		if !ok {
			return ExitSystem
		}
		defer release()
		// A pending transaction's undo restores the files it recorded: files written now would be mixed into it.
		if rec, err := recordstore.Load(root); err != nil {
			eprintf(stderr, "symroute generate: %v; nothing was written\n", err)
			return ExitSystem
		} else if tx := rec.Pending; tx != nil {
			eprintf(stderr, "symroute generate: a symroute %s (started %s) is not finished or confirmed; nothing was written. Run symroute confirm, or wait for it to roll back, then generate again\n",
				tx.Op, tx.Started.Local().Format(time.DateTime))
			return ExitFailed
		}
	}
	changes, err := filesync.Compute(root, files, ownership.IsOwned, ownership.IsOwnedLink, ownership.Globs)
	if err != nil {
		eprintf(stderr, "symroute: %v; nothing was written\n", err)
		return ExitSystem
	}
	if diff {
		// As diff(1) and git diff --exit-code: 1 says something would change, so CI can gate on it.
		fmt.Fprint(stdout, filesync.Diff(root, changes))
		if len(changes) > 0 {
			return ExitFailed
		}
		return ExitOK
	}
	if err := filesync.Apply(root, changes); err != nil {
		eprintf(stderr, "symroute: %v\n", err)
		return ExitSystem
	}
	for _, ch := range changes {
		fmt.Fprintf(progressTo(stdout, c.quiet), "%s %s\n", ch.Kind, root.Join(ch.Path))
	}
	fmt.Fprintf(stdout, "%d file(s) changed, %d unchanged\n", len(changes), len(files)-countWrites(changes))
	return ExitOK
}

// lockRoot takes the lock every writer of root takes, then removes the temporary files an interrupted run left.
// ok is false, after saying why, when the command must stop.
func lockRoot(ctx context.Context, cmd string, root *rootfs.Root, wait time.Duration, progress, stderr io.Writer) (release func(), ok bool) {
	release, err := live.Lock(ctx, root, wait, func(holder string) {
		eprintf(progress, "symroute %s: waiting for %s to finish\n", cmd, holder)
	}, func(path string) {
		eprintf(progress, "removed %s, left by an interrupted run\n", path)
	})
	if err != nil {
		eprintf(stderr, "symroute %s: %v; nothing was written\n", cmd, err)
		return nil, false
	}
	return release, true
}

func countWrites(changes []filesync.Change) int {
	n := 0
	for _, c := range changes {
		if c.Kind != filesync.Remove {
			n++
		}
	}
	return n
}

// printAllocation prints the tables and priorities chosen and why, for `symroute check`.
func printAllocation(w io.Writer, p *plan.Plan) {
	fmt.Fprintf(w, "table_range %s, priority_range %s\n", p.Host.Tables, p.Host.Priorities)
	if len(p.ClusterRules) > 0 {
		var cidrs []string
		for _, r := range p.ClusterRules {
			cidrs = append(cidrs, r.To.String())
		}
		fmt.Fprintf(w, "cluster_cidrs: priority %d (priority_range.min, ahead of every source rule) to main: %s\n", p.ClusterPriority, strings.Join(cidrs, ", "))
	}
	for _, ifc := range p.Interfaces {
		fmt.Fprintf(w, "%s (%s): table %d %s (%s); rules at priority %d (%s)\n",
			ifc.Name, ifc.Mode, ifc.Table, ifc.TableName, ifc.TableWhy, ifc.Priority, ifc.PriorityWhy)
	}
	if tracked := p.Tracked(); len(tracked) > 0 {
		var marks []string
		for _, ifc := range tracked {
			marks = append(marks, fmt.Sprintf("%s 0x%x", ifc.Name, ifc.Mark))
		}
		rules := tracked[0].MarkRules
		fmt.Fprintf(w, "track_connections: fwmark bits 0x%x (%s): %s; mark rules at priority %d (to main, from the interface itself) and %d (to the interface's table)\n",
			p.MarkMask, p.MarkWhy, strings.Join(marks, ", "), rules[0].Priority, rules[1].Priority)
	}
	for _, ifc := range p.Interfaces {
		if !ifc.Dynamic() {
			continue
		}
		var from []string
		if ifc.DHCP4 {
			from = append(from, "DHCPv4")
		}
		if ifc.AcceptRA {
			from = append(from, "router advertisements")
		}
		fmt.Fprintf(w, "%s: addresses from %s; their routes in table %d, given to the host by the rule at priority %d; %s keeps a from rule at %d for each address it has\n",
			ifc.Name, strings.Join(from, " and "), ifc.Table, ifc.LeaseRules[0].Priority, ownership.FollowUnit, ifc.Priority)
	}
	for _, c := range p.Host.Components {
		fmt.Fprintf(w, "avoiding %s: %s\n", c.Name, c.Summary())
	}
	k := reservations.Kernel
	fmt.Fprintf(w, "avoiding kernel: %s\n", k.Summary())
}

var schemaCommand = &command{
	name:    "schema",
	summary: "print the description's JSON Schema",
	long:    "Prints the JSON Schema of version 1 host descriptions, for editors and CI linters. check is the authority; the schema accepts what check accepts, where JSON Schema can say it.",
	examples: []example{
		{"Save the schema for an editor's YAML language server", "symroute schema > host.v1.schema.json"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		return func(in input) int {
			in.stdout.Write(schemas.HostV1)
			return ExitOK
		}
	},
}

var reservationsCommand = &command{
	name:    "reservations",
	summary: "list the tables, priorities and fwmarks other components claim",
	long:    "Lists, for the kernel and every component symroute knows (the names cni: takes), the routing tables, rule priorities and fwmarks it claims, whether it deletes entries it did not create, and the sources the claims come from.",
	examples: []example{
		{"What Calico claims", "symroute reservations | grep -A6 '^calico:'"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		return func(in input) int {
			printReservations(in.stdout)
			return ExitOK
		}
	},
}

func printReservations(w io.Writer) {
	fmt.Fprintf(w, "default table_range %s, priority_range %s\n", reservations.DefaultTables, reservations.DefaultPriorities)
	all := append([]reservations.Component{reservations.Kernel}, reservations.Components...)
	for _, c := range all {
		fmt.Fprintf(w, "%s: %s\n", c.Name, c.Summary())
		for _, cl := range c.Tables {
			fmt.Fprintf(w, "  table %s: %s\n", cl.Range, cl.Use)
		}
		for _, cl := range c.Priorities {
			fmt.Fprintf(w, "  priority %s: %s\n", cl.Range, cl.Use)
		}
		for _, m := range c.Marks {
			fmt.Fprintf(w, "  fwmark %s: %s\n", reservations.FormatMark(m), m.Use)
		}
		if c.FlushesForeign {
			fmt.Fprintf(w, "  deletes entries it did not create inside its claims\n")
		}
		for _, s := range c.Sources {
			fmt.Fprintf(w, "  source: %s\n", s)
		}
	}
}

// eprintf prints a message to stderr with every control byte escaped: messages carry paths from the file system
// and names from the kernel, and neither may drive the terminal.
func eprintf(w io.Writer, format string, args ...any) {
	lines := strings.SplitAfter(fmt.Sprintf(format, args...), "\n")
	for i, l := range lines {
		lines[i] = report.Printable(strings.TrimSuffix(l, "\n"))
		if strings.HasSuffix(l, "\n") {
			lines[i] += "\n"
		}
	}
	fmt.Fprint(w, strings.Join(lines, ""))
}
