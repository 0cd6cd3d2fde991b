package cli

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/symroute/symroute/internal/tools/golden"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// The completions and the man page's generated sections are made here from the command table; go test -update
// (or make golden) rewrites them, and a plain run fails when they differ from the table.
const (
	bashCompletionPath = "../../../packaging/completion/symroute.bash"
	zshCompletionPath  = "../../../packaging/completion/_symroute"
	manPagePath        = "../../../packaging/symroute.8"
)

const generatedNote = "Made from the command table in internal/orchestration/cli by go test -update: edit the table, not this file."

func TestCompletionsFollowTheTable(t *testing.T) {
	golden.File(t, bashCompletionPath, []byte(bashCompletion()))
	golden.File(t, zshCompletionPath, []byte(zshCompletion()))
}

func TestManPageFollowsTheTable(t *testing.T) {
	page, err := os.ReadFile(manPagePath)
	if err != nil {
		t.Fatal(err)
	}
	got := string(page)
	for name, content := range map[string]string{"synopsis": manSynopsis(), "commands": manCommands()} {
		if got, err = replaceRegion(got, name, content); err != nil {
			t.Fatal(err)
		}
	}
	golden.File(t, manPagePath, []byte(got))
}

// TestManPageIsValid: groff reads the page without a warning, and man formats it.
func TestManPageIsValid(t *testing.T) {
	groff := testenv.Program(t, "groff", "groff-base")
	var stderr bytes.Buffer
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", manPagePath)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("groff: %v\n%s", err, stderr.String())
	}
	if _, err := exec.LookPath("man"); err == nil {
		out, err := exec.Command("man", "-l", manPagePath).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("EXAMPLES")) {
			t.Errorf("man -l: %v\n%s", err, out)
		}
	}
}

// TestEveryValueFlagSaysWhatItTakes: every flag that takes a value has a placeholder for the help and an offer
// for the completions; every command has a summary, a long help and, when it does something, an example.
func TestEveryValueFlagSaysWhatItTakes(t *testing.T) {
	for _, cmd := range visible() {
		if cmd.summary == "" || cmd.long == "" {
			t.Errorf("%s: no summary or long help", cmd.name)
		}
		if len(cmd.examples) == 0 && cmd.name != "version" {
			t.Errorf("%s: no example", cmd.name)
		}
		fs, _ := cmd.flagSet()
		fs.VisitAll(func(f *pflag.Flag) {
			if takesValue(f) && (placeholderOf(f) == "" || f.Annotations[offerKey] == nil) {
				t.Errorf("%s --%s takes a value but has no placeholder or offer", cmd.name, f.Name)
			}
		})
	}
}

// TestBashCompletionOffers runs the bash completion as bash runs it, in a directory with a file and a
// directory, and checks what it offers: files only where a file is expected, the words a flag accepts, nothing
// for a duration.
func TestBashCompletionOffers(t *testing.T) {
	testenv.Program(t, "bash", "bash")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "host.yaml"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "imageroot"), 0o755)
	script, _ := filepath.Abs(bashCompletionPath)
	offered := func(words ...string) string {
		t.Helper()
		var quoted []string
		for _, w := range words {
			quoted = append(quoted, "'"+w+"'")
		}
		prog := fmt.Sprintf("source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _symroute; printf '%%s\\n' \"${COMPREPLY[@]}\" | sort",
			script, strings.Join(quoted, " "), len(words)-1)
		cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"symroute", "ch"}, "check"},
		{[]string{"symroute", "verify", "-o", ""}, "json text"},
		{[]string{"symroute", "verify", "--output", "j"}, "json"},
		{[]string{"symroute", "discover", "-o", ""}, "yaml"},
		{[]string{"symroute", "generate", "--format", ""}, "butane cloud-init files ignition"},
		{[]string{"symroute", "generate", "--format", "=", ""}, "butane cloud-init files ignition"},
		{[]string{"symroute", "generate", "--format", "=", "bu"}, "butane"},
		{[]string{"symroute", "generate", "--format=ig"}, "--format=ignition"},
		{[]string{"symroute", "apply", "--timeout", ""}, ""},
		{[]string{"symroute", "check", "-c", ""}, "host.yaml imageroot"},
		{[]string{"symroute", "check", "--root", ""}, "imageroot"},
		{[]string{"symroute", "verify", "--textfile", "ho"}, "host.yaml"},
		{[]string{"symroute", "check", "--st"}, "--strict"},
		{[]string{"symroute", "check", ""}, "host.yaml imageroot"},
		{[]string{"symroute", "confirm", ""}, ""},
		{[]string{"symroute", "help", "ver"}, "verify version"},
		{[]string{"symroute", "schema", ""}, ""},
		{[]string{"symroute", "status", "-o", ""}, "json text yaml"},
	} {
		if got := offered(c.words...); got != c.want {
			t.Errorf("%s: offered %q, want %q", strings.Join(c.words, " "), got, c.want)
		}
	}
	// status's argument is an interface: the names in /sys/class/net, which always has lo.
	if got := offered("symroute", "status", "l"); !slices.Contains(strings.Fields(got), "lo") || strings.Contains(got, "host.yaml") {
		t.Errorf("symroute status l: offered %q, want the interfaces starting with l", got)
	}
}

// replaceRegion replaces the lines between `.\" generated: name` and `.\" end of generated: name` in a man page.
func replaceRegion(page, name, content string) (string, error) {
	begin, end := `.\" generated: `+name+"\n", `.\" end of generated: `+name+"\n"
	i, j := strings.Index(page, begin), strings.Index(page, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("the man page has no region %q (%q ... %q)", name, begin, end)
	}
	return page[:i+len(begin)] + content + page[j:], nil
}

// roff escapes text for a man page: backslashes, minus signs, and a request character at the start of a line.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

func manSynopsis() string {
	var b strings.Builder
	for i, cmd := range visible() {
		if i > 0 {
			b.WriteString(".br\n")
		}
		fmt.Fprintf(&b, ".B symroute %s\n", roff(cmd.name))
		if cmd.args != "" {
			fmt.Fprintf(&b, ".RI [ %s ]\n", strings.Trim(cmd.args, "[]"))
		}
		fs, _ := cmd.flagSet()
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			if takesValue(f) {
				fmt.Fprintf(&b, ".RB [ %s\n.IR %s ]\n", roff(flagName(f)), placeholderOf(f))
			} else {
				fmt.Fprintf(&b, ".RB [ %s ]\n", roff(flagName(f)))
			}
		})
	}
	return b.String()
}

// manCommands is the COMMANDS, OPTIONS, EXIT STATUS and EXAMPLES sections.
func manCommands() string {
	var b strings.Builder
	b.WriteString(".SH COMMANDS\n")
	for _, cmd := range visible() {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s\n", roff(cmd.name), roff(cmd.long))
	}
	b.WriteString(".SH OPTIONS\n")
	for _, cmd := range visible() {
		fmt.Fprintf(&b, ".SS %s\n", roff("symroute "+cmd.name))
		fs, _ := cmd.flagSet()
		fs.VisitAll(func(f *pflag.Flag) {
			spec := `\fB\-\-` + roff(f.Name) + `\fR`
			if f.Shorthand != "" {
				spec = `\fB\-` + roff(f.Shorthand) + `\fR, ` + spec
			}
			if takesValue(f) {
				spec += ` \fI` + placeholderOf(f) + `\fR`
			}
			fmt.Fprintf(&b, ".TP\n%s\n%s\n", spec, roff(flagUsage(f)))
		})
	}
	b.WriteString(".SH EXIT STATUS\n")
	for _, e := range exitStatuses {
		fmt.Fprintf(&b, ".TP\n.B %d\n%s\n", e.code, roff(e.meaning))
	}
	b.WriteString(".SH EXAMPLES\n")
	for _, cmd := range visible() {
		for _, e := range cmd.examples {
			fmt.Fprintf(&b, ".PP\n%s:\n.PP\n.RS\n.nf\n%s\n.fi\n.RE\n", roff(e.what), roff(e.command))
		}
	}
	return b.String()
}

func bashCompletion() string {
	var b strings.Builder
	top := append(names(visible()), "--help", "--version")
	fmt.Fprintf(&b, `# bash completion for symroute. %s
_symroute() {
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=${COMP_WORDS[1]} prefix=
	# --flag=value: bash splits the word at '=' when COMP_WORDBREAKS holds it; otherwise it arrives whole.
	if [[ $cur == = && $prev == --* ]]; then
		cur=
	elif [[ $prev == = && $COMP_CWORD -ge 3 ]]; then
		prev=${COMP_WORDS[COMP_CWORD-2]}
	elif [[ $cur == --*=* ]]; then
		prev=${cur%%%%=*} prefix=${cur%%%%=*}= cur=${cur#*=}
	fi
	if [[ $COMP_CWORD -eq 1 ]]; then
		COMPREPLY=($(compgen -W "%s" -- "$cur"))
		return
	fi
	local flags= arg=nothing
	case $cmd in
`, generatedNote, strings.Join(top, " "))
	for _, cmd := range visible() {
		fs, _ := cmd.flagSet()
		var flags []string
		fmt.Fprintf(&b, "\t%s)\n\t\tcase $prev in\n", cmd.name)
		fs.VisitAll(func(f *pflag.Flag) {
			spellings := []string{"--" + f.Name}
			if f.Shorthand != "" {
				spellings = append([]string{"-" + f.Shorthand}, spellings...)
			}
			flags = append(flags, spellings...)
			if takesValue(f) {
				o := offerOf(f)
				fmt.Fprintf(&b, "\t\t%s) _symroute_offer \"$cur\" \"$prefix\" %s; return ;;\n", strings.Join(spellings, " | "), strings.Join(append([]string{string(o.kind)}, o.words...), " "))
			}
		})
		arg := "nothing"
		if cmd.args != "" {
			arg = string(cmd.arg.kind)
		}
		fmt.Fprintf(&b, "\t\tesac\n\t\tflags=\"%s\" arg=%s\n\t\t;;\n", strings.Join(flags, " "), arg)
	}
	fmt.Fprintf(&b, `	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$flags" -- "$cur"))
	else
		_symroute_offer "$cur" "" $arg
	fi
}

# _symroute_offer CURRENT PREFIX KIND [WORD...] offers what a flag's value or an argument can be.
_symroute_offer() {
	local cur=$1 prefix=$2 kind=$3
	shift 3
	case $kind in
	file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -P "$prefix" -f -- "$cur")) ;;
	dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -P "$prefix" -d -- "$cur")) ;;
	words) COMPREPLY=($(compgen -P "$prefix" -W "$*" -- "$cur")) ;;
	commands) COMPREPLY=($(compgen -W "%s" -- "$cur")) ;;
	interfaces) COMPREPLY=($(compgen -W "$(command ls /sys/class/net 2>/dev/null)" -- "$cur")) ;;
	*) COMPREPLY=() ;;
	esac
}
complete -F _symroute symroute
`, strings.Join(names(visible()), " "))
	return b.String()
}

var zshSpecial = regexp.MustCompile(`[\[\]:\\]`)

// zshQuote makes text safe inside a single-quoted _arguments spec: brackets and colons escaped.
func zshQuote(s string) string {
	s = zshSpecial.ReplaceAllString(s, `\$0`)
	return strings.ReplaceAll(s, "'", `'\''`)
}

func zshAction(o offer) string {
	switch o.kind {
	case offerFile:
		return "_files"
	case offerDir:
		return "_files -/"
	case offerWords:
		return "(" + strings.Join(o.words, " ") + ")"
	case offerCommands:
		return "(" + strings.Join(names(visible()), " ") + ")"
	case offerInterfaces:
		return "_net_interfaces"
	}
	return " "
}

func zshCompletion() string {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef symroute\n# zsh completion for symroute. %s\n_symroute() {\n\tlocal -a commands=(\n", generatedNote)
	for _, cmd := range visible() {
		fmt.Fprintf(&b, "\t\t'%s:%s'\n", cmd.name, zshQuote(cmd.summary))
	}
	b.WriteString("\t)\n\tif (( CURRENT == 2 )); then\n\t\t_describe -t commands 'symroute command' commands\n\t\treturn\n\tfi\n")
	b.WriteString("\tlocal cmd=$words[2]\n\tshift words\n\t(( CURRENT-- ))\n\tcase $cmd in\n")
	for _, cmd := range visible() {
		fs, _ := cmd.flagSet()
		var specs []string
		fs.VisitAll(func(f *pflag.Flag) {
			desc := "[" + zshQuote(f.Usage) + "]"
			value := ""
			if takesValue(f) {
				value = ":" + zshQuote(placeholderOf(f)) + ":" + zshAction(offerOf(f))
			}
			if f.Shorthand == "" {
				eq := ""
				if takesValue(f) {
					eq = "="
				}
				specs = append(specs, "'--"+f.Name+eq+desc+value+"'")
				return
			}
			short, long := "-"+f.Shorthand, "--"+f.Name
			if takesValue(f) {
				short, long = short+"+", long+"="
			}
			specs = append(specs, fmt.Sprintf("'(%s --%s)'{%s,%s}'%s%s'", "-"+f.Shorthand, f.Name, short, long, desc, value))
		})
		if cmd.args != "" {
			specs = append(specs, "'1:"+zshQuote(strings.Trim(cmd.args, "[]"))+":"+zshAction(cmd.arg)+"'")
		}
		fmt.Fprintf(&b, "\t%s)\n\t\t_arguments -s -S \\\n\t\t\t%s\n\t\t;;\n", cmd.name, strings.Join(specs, " \\\n\t\t\t"))
	}
	b.WriteString("\tesac\n}\n_symroute \"$@\"\n")
	return b.String()
}
