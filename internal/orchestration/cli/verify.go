package cli

import (
	"github.com/spf13/pflag"

	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/symroute/symroute/generator"
	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fileset"
	"github.com/symroute/symroute/internal/core/metrics"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/report"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/orchestration/live"
	"github.com/symroute/symroute/internal/orchestration/state"
)

// busTimeout bounds how long verify waits for networkd on D-Bus before skipping the network-file check.
const busTimeout = live.BusTimeout

var verifyCommand = &command{
	name:    "verify",
	args:    "[FILE]",
	arg:     files,
	summary: "compare the live rules, routes, rp_filter and networkd state with the description (read-only)",
	long: "Read-only. Compares the rules, symroute's tables, the kernel's answer for a reply from every managed " +
		"address, the effective rp_filter and the .network file networkd applied to each link with the description. " +
		"Exits 0 when everything holds, 1 on drift, 3 when the state cannot be read. -o json prints the same for " +
		"machines; --textfile also writes Prometheus metrics for node_exporter's textfile collector.",
	examples: []example{
		{"Do replies leave where requests came in, right now?", "symroute verify"},
		{"The findings for a script", "symroute verify -o json | jq '.findings[].message'"},
		{"Metrics for node_exporter", "symroute verify --textfile /var/lib/node_exporter/textfile/symroute.prom"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var c common
		var output, textfile string
		descriptionFlags(fs, &c, "/")
		fs.StringVarP(&output, "output", "o", "text", "output format")
		describeValue(fs, "output", "FORMAT", words("text", "json"))
		fs.StringVar(&textfile, "textfile", "", "also write Prometheus metrics to this file")
		describeValue(fs, "textfile", "FILE", files)
		return readsDescription(&c, func(in input) int { return verify(c, output, textfile, in.stdout, in.stderr) })
	},
}

func verify(c common, output, textfile string, stdout, stderr io.Writer) int {
	// networkd's answer is what verify compares, as drift: only the links' facts go into the matching.
	c.host = true
	l, files, status, ok := pipeline(c, stderr)
	if !ok {
		return status
	}

	ctx := context.Background()
	src, closeSrc, err := live.Sources(ctx, "")
	if err != nil {
		eprintf(stderr, "symroute verify: %v\n", err)
		return ExitSystem
	}
	defer closeSrc()
	res, err := verifyLive(ctx, c, l, files, src, stderr)
	if err != nil {
		eprintf(stderr, "symroute verify: cannot read the live state: %v\n", err)
		writeMetrics(textfile, nil, stderr)
		return ExitSystem
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(struct {
			OK bool `json:"ok"`
			drift.Result
		}{res.OK(), res})
	} else {
		printResult(stdout, stderr, c.shown(), res)
	}
	if !writeMetrics(textfile, &res, stderr) {
		return ExitSystem
	}
	if !res.OK() {
		return ExitFailed
	}
	return ExitOK
}

// verifyLive compares the description's plan with the live state: the comparison verify makes, and status shows.
func verifyLive(ctx context.Context, c common, l loaded, files []fileset.File, src state.Sources, stderr io.Writer) (drift.Result, error) {
	expect := drift.Expect{NetworkFiles: generator.ExpectedNetworkFiles(files), Recorded: recorded(c.root, c.cmd, stderr)}
	return state.Verify(ctx, l.plan, expect, src)
}

// recorded reads what the record under root says symroute has in place, for telling its rules from others'; a
// root without a record, or one that cannot be read, yields nil (with a note), and every unplanned rule counts as
// someone else's.
func recorded(rootPath, cmd string, stderr io.Writer) *record.State {
	root, err := rootfs.Open(rootPath)
	if err != nil {
		return nil
	}
	defer root.Close()
	st, err := live.Recorded(root)
	if err != nil {
		eprintf(stderr, "symroute %s: note: %v\n", cmd, err)
	}
	return st
}

func printResult(stdout, stderr io.Writer, file string, res drift.Result) {
	for _, f := range res.Findings {
		loc := file
		if f.Line > 0 {
			loc = fmt.Sprintf("%s:%d:%d", file, f.Line, f.Column)
		}
		path := ""
		if f.Path != "" {
			path = f.Path + ": "
		}
		fmt.Fprintf(stdout, "%s\n", report.Printable(fmt.Sprintf("%s: drift: %s%s [%s]", loc, path, f.Message, f.Kind)))
	}
	for _, n := range res.Notes {
		eprintf(stderr, "symroute verify: note: %s\n", n)
	}
	ch := res.Checked
	checked := fmt.Sprintf("checked %d rules, %d routes, %d probes, %d links, %d rp_filter values", ch.Rules, ch.Routes, ch.Probes, ch.Links, ch.Sysctls)
	if ch.Networkd {
		checked += " and networkd's files"
	}
	if res.OK() {
		fmt.Fprintf(stdout, "symroute verify: ok, replies leave by the interface they came in on; %s\n", checked)
	} else {
		fmt.Fprintf(stdout, "symroute verify: %d problem(s); %s\n", len(res.Findings), checked)
	}
}

// writeMetrics writes the Prometheus text format for node_exporter's textfile collector; res nil means the state
// could not be read. It reports false when the file cannot be written.
func writeMetrics(path string, res *drift.Result, stderr io.Writer) bool {
	if path == "" {
		return true
	}
	var b strings.Builder
	metrics.Verify(&b, res, time.Now())
	if err := filesync.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		// The error names the file (or the directory that is missing).
		eprintf(stderr, "symroute verify: --textfile: cannot write the metrics: %v\n", err)
		return false
	}
	return true
}
