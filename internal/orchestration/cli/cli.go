// Package cli is symroute's command line: it parses flags, runs one command and maps the outcome to an exit
// status. It is the only place that prints.
package cli

import (
	"context"
	"errors"
	"fmt"
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

const usage = `symroute: source-based policy routing for multi-homed hosts, through systemd-networkd

Usage:
  symroute check [-c FILE] [--root DIR] [--strict]
  symroute generate [-c FILE] [--root DIR] [--diff] [--strict] [--format files|butane|ignition|cloud-init]
  symroute apply [-c FILE] [--root DIR] [--timeout DURATION] [--no-rollback] [--force]
  symroute try [-c FILE] [--root DIR] [--timeout DURATION] [--wait DURATION]
  symroute confirm [--root DIR]
  symroute remove [--root DIR] [--all] [--force] [--offline]
  symroute recover [--root DIR] [--offline]
  symroute verify [-c FILE] [--root DIR] [-o text|json] [--textfile PATH]
  symroute discover [--root DIR] [-o FILE]
  symroute schema
  symroute reservations
  symroute --version

Commands:
  check         validate the description and show the tables and priorities chosen, and why
  generate      write the networkd, sysctl.d and iproute2 files under --root (default /)
  apply         generate, reload networkd over D-Bus, apply sysctls, verify; roll back if verification fails
  try           apply, then roll back unless confirmed within --timeout (default 120s)
  confirm       keep the change a try made
  remove        undo what symroute applied; links keep the addresses its files gave them
  recover       undo a change left unfinished or unconfirmed (every command does this first; at boot, a unit)
  verify        compare the live rules, routes, rp_filter and networkd state with the description (read-only)
  discover      print a description of this host as it is now, to start from
  schema        print the description's JSON Schema
  reservations  list the tables, priorities and fwmarks other components claim

Exit status: 0 ok, 1 verification or apply failed, 2 invalid description or usage, 3 system error.
`

// Main runs symroute with args (without the program name) and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitInvalid
	}
	switch args[0] {
	case "check":
		return check(args[1:], stdout, stderr)
	case "generate":
		return generate(args[1:], stdout, stderr)
	case "verify":
		return verify(args[1:], stdout, stderr)
	case "apply":
		return applyCmd(args[1:], stdout, stderr)
	case "try":
		return tryCmd(args[1:], stdout, stderr)
	case "confirm":
		return confirmCmd(args[1:], stdout, stderr)
	case "remove":
		return removeCmd(args[1:], stdout, stderr)
	case "recover":
		return recoverCmd(args[1:], stdout, stderr)
	case watchCommand:
		return watchTry(args[1:], stdout, stderr)
	case "discover":
		return discoverCmd(args[1:], stdout, stderr)
	case "schema":
		return noFlags("schema", args[1:], stderr, func() { stdout.Write(schemas.HostV1) })
	case "reservations":
		return noFlags("reservations", args[1:], stderr, func() { printReservations(stdout) })
	case "--version", "version":
		fmt.Fprintf(stdout, "symroute %s\n", Version)
		return ExitOK
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	eprintf(stderr, "symroute: unknown command %q\n\n%s", args[0], usage)
	return ExitInvalid
}

func noFlags(name string, args []string, stderr io.Writer, run func()) int {
	if len(args) > 0 {
		eprintf(stderr, "symroute %s takes no arguments\n", name)
		return ExitInvalid
	}
	run()
	return ExitOK
}

// common are the flags every description-reading command takes.
type common struct {
	config string
	root   string
	strict bool
}

func pflagSet(name string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func newFlags(name string, stderr io.Writer, c *common, rootDefault string) *pflag.FlagSet {
	fs := pflagSet(name, stderr)
	fs.StringVarP(&c.config, "config", "c", DefaultDescription, "host description `file`")
	fs.StringVar(&c.root, "root", rootDefault, "root `directory` of the system to read .network files from and write to")
	fs.BoolVar(&c.strict, "strict", false, "treat warnings as errors")
	return fs
}

// parseFlags parses args; when the command must not go on, ok is false and status is the exit status (0 after
// --help, which pflag has printed).
func parseFlags(fs *pflag.FlagSet, args []string, stderr io.Writer) (status int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return ExitOK, false
		}
		eprintf(stderr, "symroute %s: %v\nUsage of symroute %s:\n%s", fs.Name(), err, fs.Name(), fs.FlagUsages())
		return ExitInvalid, false
	}
	if fs.NArg() > 0 {
		eprintf(stderr, "symroute %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return ExitInvalid, false
	}
	return ExitOK, true
}

// loaded is a description that passed validation, with its plan.
type loaded struct {
	source string
	plan   *plan.Plan
	rep    report.Report
}

// load reads, validates and plans the description, printing every problem. ok is false when symroute must stop,
// with the exit status to use.
func load(c common, stderr io.Writer) (l loaded, status int, ok bool) {
	data, err := rootfs.ReadFile(c.config, description.MaxSize)
	if err != nil {
		eprintf(stderr, "symroute: cannot read the host description: %s\n", report.Printable(err.Error()))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			eprintf(stderr, "symroute: write one (see `symroute schema`) or name it with -c FILE\n")
			return l, ExitInvalid, false
		case errors.Is(err, rootfs.ErrTooLarge):
			eprintf(stderr, "symroute: a description is at most %d bytes (1 MiB); check that -c names the right file\n", description.MaxSize)
			return l, ExitInvalid, false
		case errors.Is(err, rootfs.ErrNotRegular):
			eprintf(stderr, "symroute: name a regular file with -c FILE\n")
			return l, ExitInvalid, false
		}
		return l, ExitSystem, false
	}
	l.source = generator.DescriptionLabel(c.config)
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

// stopOnReport prints the report and says whether it stops the run.
func stopOnReport(rep report.Report, c common, stderr io.Writer) bool {
	rep.Write(stderr, c.config, c.strict)
	if rep.HasErrors(c.strict) {
		errs, warns := rep.Count(report.Error), rep.Count(report.Warning)
		if c.strict {
			errs, warns = errs+warns, 0
		}
		eprintf(stderr, "symroute: %s: %d error(s), %d warning(s); nothing was written or changed\n", c.config, errs, warns)
		return true
	}
	return false
}

// loadAndGenerate loads the description and renders its files, printing every problem; ok is false when the
// command must stop, with the exit status to use.
func loadAndGenerate(c common, stderr io.Writer) (l loaded, files []fileset.File, status int, ok bool) {
	if l, status, ok = load(c, stderr); !ok {
		return l, nil, status, false
	}
	if stopOnReport(l.rep, c, stderr) {
		return l, nil, ExitInvalid, false
	}
	files, genRep, err := generateFiles(l, c)
	if err != nil {
		eprintf(stderr, "symroute: %v\n", err)
		return l, nil, ExitSystem, false
	}
	if stopOnReport(genRep, c, stderr) {
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
	return generator.Generate(l.plan, generator.Options{Source: l.source, Root: system})
}

func check(args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("check", stderr, &c, "")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
	l, status, ok := load(c, stderr)
	if !ok {
		return status
	}
	if !l.rep.HasErrors(false) && c.root != "" {
		_, genRep, err := generateFiles(l, c)
		if err != nil {
			eprintf(stderr, "symroute: %v\n", err)
			return ExitSystem
		}
		l.rep.Merge(genRep)
	}
	if stopOnReport(l.rep, c, stderr) {
		return ExitInvalid
	}
	explain(stdout, l.plan)
	return ExitOK
}

func generate(args []string, stdout, stderr io.Writer) int {
	var c common
	var diff bool
	var formatName string
	fs := newFlags("generate", stderr, &c, "/")
	fs.BoolVar(&diff, "diff", false, "print what would change as a unified diff and write nothing")
	fs.StringVar(&formatName, "format", string(generator.FormatFiles), "`format`: files (write under --root), or butane, ignition or cloud-init (print a provisioning document)")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
	format, err := generator.ParseFormat(formatName)
	if err != nil {
		eprintf(stderr, "symroute generate: %v\n", err)
		return ExitInvalid
	}
	if format != generator.FormatFiles {
		// A provisioning document describes a machine that does not exist yet: read another root's .network
		// files only when asked to with --root.
		if !fs.Changed("root") {
			c.root = ""
		}
		if diff {
			eprintf(stderr, "symroute generate: --diff compares with files under --root; it does not go with --format %s\n", format)
			return ExitInvalid
		}
	}
	l, files, status, ok := loadAndGenerate(c, stderr)
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
		release, ok := lockRoot(context.Background(), "generate", root, lock.DefaultWait, stdout, stderr)
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
	changes, err := filesync.Compute(root, files, ownership.IsOwned, ownership.Globs)
	if err != nil {
		eprintf(stderr, "symroute: %v; nothing was written\n", err)
		return ExitSystem
	}
	if diff {
		fmt.Fprint(stdout, filesync.Diff(root, changes))
		return ExitOK
	}
	if err := filesync.Apply(root, changes); err != nil {
		eprintf(stderr, "symroute: %v\n", err)
		return ExitSystem
	}
	for _, ch := range changes {
		fmt.Fprintf(stdout, "%s %s\n", ch.Kind, root.Join(ch.Path))
	}
	fmt.Fprintf(stdout, "%d file(s) changed, %d unchanged\n", len(changes), len(files)-countWrites(changes))
	return ExitOK
}

// lockRoot takes the lock every writer of root takes, then removes the temporary files an interrupted run left.
// ok is false, after saying why, when the command must stop.
func lockRoot(ctx context.Context, cmd string, root *rootfs.Root, wait time.Duration, stdout, stderr io.Writer) (release func(), ok bool) {
	release, err := lock.Take(ctx, root, wait, func(holder string) {
		eprintf(stderr, "symroute %s: waiting for %s to finish\n", cmd, holder)
	})
	if err != nil {
		eprintf(stderr, "symroute %s: %v; nothing was written\n", cmd, err)
		return nil, false
	}
	removed, err := filesync.RemoveTemps(root, ownership.IsOwnedName, ownership.Globs)
	for _, p := range removed {
		eprintf(stdout, "removed %s, left by an interrupted run\n", root.Join(p))
	}
	if err != nil {
		release()
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

// explain prints the tables and priorities chosen and why, for `symroute check`.
func explain(w io.Writer, p *plan.Plan) {
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
	for _, c := range p.Host.Components {
		fmt.Fprintf(w, "avoiding %s: %s\n", c.Name, c.Summary())
	}
	k := reservations.Kernel
	fmt.Fprintf(w, "avoiding kernel: %s\n", k.Summary())
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
