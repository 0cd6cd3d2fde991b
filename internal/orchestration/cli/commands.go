package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/symroute/symroute/internal/core/report"
)

// A command is one entry of the command table. Everything symroute says about a command (the global usage, its
// help, the shell completions and the man page) is made from its entry, so they cannot drift apart.
type command struct {
	name    string
	summary string // one line, for the list of commands
	// args names the positional arguments in the usage line ("[FILE]"), and arg what the completions offer for
	// them; a command without args takes none.
	args     string
	arg      offer
	long     string // what the command does, one paragraph, for its help and the man page
	examples []example
	// setup defines the command's flags on fs and returns what runs it once they are parsed.
	setup  func(fs *pflag.FlagSet) runner
	hidden bool // an internal command: in no help, completion or man page
}

type example struct {
	what    string // what it does, printed as a comment above the command line
	command string
}

type runner func(in input) int

// input is what a command gets once its flags are parsed.
type input struct {
	args           []string // positional arguments
	flags          *pflag.FlagSet
	stdin          io.Reader
	stdout, stderr io.Writer
}

// offer is what the shell completions offer for a flag's value or a positional argument.
type offer struct {
	kind  offerKind
	words []string
}

type offerKind string

const (
	offerNothing  offerKind = "nothing" // a free value, such as a duration: no guess beats none
	offerFile     offerKind = "file"
	offerDir      offerKind = "dir"
	offerWords    offerKind = "words"
	offerCommands offerKind = "commands" // the names of symroute's commands
	// offerInterfaces: the names of the host's network interfaces, as /sys/class/net lists them.
	offerInterfaces offerKind = "interfaces"
)

var (
	nothing        = offer{kind: offerNothing}
	files          = offer{kind: offerFile}
	directories    = offer{kind: offerDir}
	commandName    = offer{kind: offerCommands}
	interfaceNames = offer{kind: offerInterfaces}
)

func words(w ...string) offer { return offer{kind: offerWords, words: w} }

// Annotation keys under which a flag carries its placeholder and its offer.
const (
	placeholderKey = "symroute-placeholder"
	offerKey       = "symroute-offer"
)

// describeValue gives flag name, which takes a value, the placeholder its help shows (FILE) and what completions
// offer for it. A value flag offering words accepts only those words.
func describeValue(fs *pflag.FlagSet, name, placeholder string, o offer) {
	fs.SetAnnotation(name, placeholderKey, []string{placeholder})
	fs.SetAnnotation(name, offerKey, append([]string{string(o.kind)}, o.words...))
}

func placeholderOf(f *pflag.Flag) string {
	if p := f.Annotations[placeholderKey]; len(p) == 1 {
		return p[0]
	}
	return ""
}

func offerOf(f *pflag.Flag) offer {
	o := f.Annotations[offerKey]
	if len(o) == 0 {
		return nothing
	}
	return offer{kind: offerKind(o[0]), words: o[1:]}
}

// takesValue says whether flag f takes a value (every flag but a boolean one).
func takesValue(f *pflag.Flag) bool { return f.NoOptDefVal == "" }

// commands is the command table, in the order the help lists it.
var commands []*command

func init() {
	commands = []*command{
		checkCommand, generateCommand, applyCommand, tryCommand, confirmCommand, removeCommand, recoverCommand,
		verifyCommand, statusCommand, explainCommand, discoverCommand, schemaCommand, reservationsCommand, helpCommand, versionCommand,
		watchTryCommand,
	}
}

func lookup(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

// visible lists the commands a user sees.
func visible() []*command {
	var out []*command
	for _, c := range commands {
		if !c.hidden {
			out = append(out, c)
		}
	}
	return out
}

// flagSet returns cmd's flags, with the runner they feed. --help is every command's.
func (cmd *command) flagSet() (*pflag.FlagSet, runner) {
	fs := pflag.NewFlagSet(cmd.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard) // symroute prints its own messages and help
	fs.Usage = func() {}
	fs.SortFlags = false // in the order the command defines them: the description's flags first
	run := cmd.setup(fs)
	fs.BoolP("help", "h", false, "show this help")
	return fs, run
}

// Main runs symroute with args (without the program name) and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return ExitInvalid
	}
	switch args[0] {
	case "-h", "--help":
		args[0] = "help"
	case "--version":
		args[0] = "version"
	}
	cmd := lookup(args[0])
	if cmd == nil {
		msg := fmt.Sprintf("symroute: unknown command %s", report.Quote(args[0]))
		if strings.HasPrefix(args[0], "-") {
			msg = fmt.Sprintf("symroute: unknown option %s; options come after the command", report.Quote(args[0]))
		} else if near := report.Nearest(args[0], names(visible())); near != "" {
			msg += fmt.Sprintf("; did you mean %s?", near)
		}
		eprintf(stderr, "%s\nSee 'symroute help' for the commands.\n", msg)
		return ExitInvalid
	}
	fs, run := cmd.flagSet()
	err := fs.Parse(args[1:])
	if help, _ := fs.GetBool("help"); help && err == nil {
		writeHelp(stdout, cmd)
		return ExitOK
	}
	if err == nil {
		err = checkWords(fs)
	}
	if err == nil && len(fs.Args()) > maxArgs(cmd) {
		err = fmt.Errorf("unexpected argument %s", report.Quote(fs.Arg(maxArgs(cmd))))
	}
	if err != nil {
		return usageError(stderr, cmd.name, "%v", err)
	}
	return run(input{args: fs.Args(), flags: fs, stdin: stdin, stdout: stdout, stderr: stderr})
}

// usageError prints a usage mistake, short, and where to read more; it returns the exit status for it.
func usageError(stderr io.Writer, cmd string, format string, args ...any) int {
	eprintf(stderr, "symroute %s: %s\nSee 'symroute help %s'.\n", cmd, fmt.Sprintf(format, args...), cmd)
	return ExitInvalid
}

func maxArgs(cmd *command) int {
	if cmd.args == "" {
		return 0
	}
	return 1
}

// checkWords refuses a value outside the words a flag offers: the completions and the check are one list.
func checkWords(fs *pflag.FlagSet) error {
	var err error
	fs.Visit(func(f *pflag.Flag) {
		o := offerOf(f)
		if err == nil && o.kind == offerWords && !slices.Contains(o.words, f.Value.String()) {
			err = fmt.Errorf("%s takes %s, not %s", flagName(f), orList(o.words), report.Quote(f.Value.String()))
		}
	})
	return err
}

// flagName is how messages name a flag: its short form when it has one, as users type it.
func flagName(f *pflag.Flag) string {
	if f.Shorthand != "" {
		return "-" + f.Shorthand
	}
	return "--" + f.Name
}

// orList renders words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func names(cmds []*command) []string {
	var out []string
	for _, c := range cmds {
		out = append(out, c.name)
	}
	return out
}

var helpCommand = &command{
	name:    "help",
	summary: "show a command's options and examples",
	args:    "[COMMAND]",
	arg:     commandName,
	long:    "Without a command, lists the commands; with one, prints its usage, what it does, its options and examples. symroute COMMAND --help (or -h) prints the same.",
	examples: []example{
		{"The options and examples of check", "symroute help check"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		return func(in input) int {
			if len(in.args) == 0 {
				fmt.Fprint(in.stdout, usage())
				return ExitOK
			}
			cmd := lookup(in.args[0])
			if cmd == nil || cmd.hidden {
				return usageError(in.stderr, "help", "no command %s; the commands are %s", report.Quote(in.args[0]), strings.Join(names(visible()), ", "))
			}
			writeHelp(in.stdout, cmd)
			return ExitOK
		}
	},
}

var versionCommand = &command{
	name:    "version",
	summary: "print symroute's version (also symroute --version)",
	long:    "Prints the version symroute was built as: the package's version for a packaged symroute, git describe's for a build from source.",
	setup: func(fs *pflag.FlagSet) runner {
		return func(in input) int {
			fmt.Fprintf(in.stdout, "symroute %s\n", Version)
			return ExitOK
		}
	},
}

// synopsis is cmd's usage line: symroute check [FILE] [-c FILE] [--root DIR] [--strict].
func synopsis(cmd *command) string {
	parts := []string{"symroute", cmd.name}
	if cmd.args != "" {
		parts = append(parts, cmd.args)
	}
	fs, _ := cmd.flagSet()
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		s := flagName(f)
		if takesValue(f) {
			s += " " + placeholderOf(f)
		}
		parts = append(parts, "["+s+"]")
	})
	return strings.Join(parts, " ")
}

const lead = "symroute: source-based policy routing for multi-homed hosts, through systemd-networkd"

// exitStatuses are symroute's exit statuses and what each means, part of its contract with scripts and packages.
var exitStatuses = []struct {
	code    int
	meaning string
}{
	{ExitOK, "ok"},
	{ExitFailed, "verification or apply failed; for generate --diff, something would change"},
	{ExitInvalid, "invalid description or usage; nothing was written or changed"},
	{ExitSystem, "system error: the state could not be read or written"},
}

func writeExitStatus(b *strings.Builder) {
	b.WriteString("Exit status:\n")
	for _, e := range exitStatuses {
		fmt.Fprintf(b, "  %d  %s\n", e.code, e.meaning)
	}
}

// usage is the global help.
func usage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nUsage:\n  symroute COMMAND [ARGUMENTS] [OPTIONS]\n\nCommands:\n", lead)
	width := 0
	for _, c := range visible() {
		width = max(width, len(c.name))
	}
	for _, c := range visible() {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, c.name, c.summary)
	}
	b.WriteString("\n")
	b.WriteString(wrap("The commands that read the host description take it as FILE, as -c FILE, or as - for standard input; without either, "+DefaultDescription+".", 100, ""))
	b.WriteString("\nRun 'symroute help COMMAND' (or symroute COMMAND --help) for a command's options and examples.\n\n")
	writeExitStatus(&b)
	return b.String()
}

// writeHelp prints cmd's help: usage, what it does, options, examples.
func writeHelp(w io.Writer, cmd *command) {
	var b strings.Builder
	fmt.Fprintf(&b, "symroute %s: %s\n\nUsage:\n  %s\n", cmd.name, cmd.summary, wrap(synopsis(cmd), 98, "    "))
	b.WriteString(wrap(cmd.long, 100, ""))
	b.WriteString("\nOptions:\n")
	rows := optionRows(cmd)
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-*s  %s", width, r[0], wrap(r[1], 96-width, strings.Repeat(" ", width+4)))
	}
	if len(cmd.examples) > 0 {
		b.WriteString("\nExamples:\n")
		for i, e := range cmd.examples {
			if i > 0 {
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "  # %s\n  %s\n", e.what, e.command)
		}
	}
	b.WriteString("\n")
	writeExitStatus(&b)
	io.WriteString(w, b.String())
}

// optionRows lists cmd's options as the help shows them: "-c, --config FILE" and what it does, with its default.
func optionRows(cmd *command) [][2]string {
	fs, _ := cmd.flagSet()
	var rows [][2]string
	fs.VisitAll(func(f *pflag.Flag) { rows = append(rows, [2]string{flagSpec(f), flagUsage(f)}) })
	return rows
}

func flagSpec(f *pflag.Flag) string {
	s := "    --" + f.Name
	if f.Shorthand != "" {
		s = "-" + f.Shorthand + ", --" + f.Name
	}
	if takesValue(f) {
		s += " " + placeholderOf(f)
	}
	return s
}

// flagUsage is what f does, with its default when it has one worth saying.
func flagUsage(f *pflag.Flag) string {
	if !takesValue(f) || f.DefValue == "" || f.DefValue == "0s" {
		return f.Usage
	}
	return fmt.Sprintf("%s (default %s)", f.Usage, f.DefValue)
}

// wrap breaks text into lines at spaces, the first at most width bytes long and every later one indented by
// indent and at most width bytes long after it; a longer word stands on a line of its own. The result ends with a
// newline.
func wrap(text string, width int, indent string) string {
	var b strings.Builder
	line := ""
	for _, word := range strings.Fields(text) {
		switch {
		case line == "":
			line = word
		case len(line)+1+len(word) > width:
			b.WriteString(line + "\n" + indent)
			line = word
		default:
			line += " " + word
		}
	}
	b.WriteString(line + "\n")
	return b.String()
}
