// Package metrics renders verify's result in the Prometheus text format: the one set of names that symroute
// verify --textfile writes for node_exporter and the node agent serves over HTTP, so a dashboard reads both.
package metrics

import (
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/symroute/symroute/internal/core/drift"
)

// ContentType is the Prometheus text exposition format's.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Gauge writes one gauge's HELP and TYPE lines.
func Gauge(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
}

// Verify writes the metrics of a verify that ran at at; res nil means the live state could not be read.
func Verify(w io.Writer, res *drift.Result, at time.Time) {
	ok, readError := 0, 1
	if res != nil {
		readError = 0
		if res.OK() {
			ok = 1
		}
	}
	Gauge(w, "symroute_verify_success", "1 when the live routing state matched the host description at the last verify.")
	fmt.Fprintf(w, "symroute_verify_success %d\n", ok)
	Gauge(w, "symroute_verify_read_error", "1 when the last verify could not read the live state.")
	fmt.Fprintf(w, "symroute_verify_read_error %d\n", readError)
	Gauge(w, "symroute_verify_last_run_timestamp_seconds", "When verify last ran, in seconds since the epoch.")
	fmt.Fprintf(w, "symroute_verify_last_run_timestamp_seconds %d\n", at.Unix())
	if res == nil {
		return
	}
	counts := map[drift.Kind]int{}
	bad := map[string]bool{}
	for _, f := range res.Findings {
		counts[f.Kind]++
		bad[f.Interface] = true
	}
	Gauge(w, "symroute_verify_findings", "Differences between the description and the live state at the last verify, by kind.")
	for _, k := range drift.Kinds {
		fmt.Fprintf(w, "symroute_verify_findings{kind=%q} %d\n", k, counts[k])
	}
	Gauge(w, "symroute_verify_interface_ok", "1 when nothing drifted for the interface at the last verify.")
	names := append([]string(nil), res.Interfaces...)
	sort.Strings(names)
	for _, name := range names {
		v := 1
		if bad[name] {
			v = 0
		}
		fmt.Fprintf(w, "symroute_verify_interface_ok{interface=%q} %d\n", name, v)
	}
}
