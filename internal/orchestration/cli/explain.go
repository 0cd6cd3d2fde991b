package cli

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"slices"

	"github.com/spf13/pflag"

	"github.com/symroute/symroute/internal/core/explain"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/core/record"
	"github.com/symroute/symroute/internal/core/routing"
	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/edges/nftables"
	"github.com/symroute/symroute/internal/edges/sysctl"
)

var explainCommand = &command{
	name:    "explain",
	summary: "show where the reply to a request leaves, and why, from the kernel's own answers (read-only)",
	long: "Read-only, on any host. For a request from --client to --to (an address of this host, or one it DNATs " +
		"to a pod), asks the kernel: the interface the request arrives on (--in; else the link that holds --to; " +
		"else the link the kernel routes the client through), whether rp_filter lets it in and why, the rule and " +
		"table its reply takes, the interface and gateway the reply leaves by, and whether that is where the " +
		"request came in. When it is not, it names the smallest description change that fixes it, or the rule of " +
		"another program that breaks it. The description (-c, default " + DefaultDescription + " when it exists) " +
		"only adds the lines a fix names. Exits 0 when the reply leaves where the request came in, 1 when it " +
		"does not or rp_filter drops the request, 3 when the kernel cannot be read.",
	examples: []example{
		{"Why does a client beyond eth-b get no answer from 10.0.0.1?", "symroute explain --client 198.51.100.7 --to 10.0.0.1"},
		{"A LoadBalancer address DNAT'd to a pod, arriving on eth-b", "symroute explain --client 198.51.100.7 --to 10.244.1.5 --in eth-b --port 443"},
		{"The verdict for a script", "symroute explain --client 198.51.100.7 --to 10.0.0.1 -o json | jq .symmetric"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var c common
		var client, to, in, proto, output string
		var port int
		fs.StringVarP(&c.config, "config", "c", DefaultDescription, "the host description, for the lines a fix names; read when it exists")
		describeValue(fs, "config", "FILE", files)
		fs.StringVar(&client, "client", "", "the address the request comes from")
		describeValue(fs, "client", "ADDR", nothing)
		fs.StringVar(&to, "to", "", "the address the request is for: the host's, or the pod's it is DNAT'd to")
		describeValue(fs, "to", "ADDR", nothing)
		fs.IntVar(&port, "port", 0, "the request's destination port, shown with the answer")
		describeValue(fs, "port", "N", nothing)
		fs.StringVar(&proto, "proto", "tcp", "the request's protocol")
		describeValue(fs, "proto", "PROTO", words("tcp", "udp"))
		fs.StringVar(&in, "in", "", "the interface the request arrives on, when not the one that holds --to")
		describeValue(fs, "in", "IFACE", nothing)
		fs.StringVarP(&output, "output", "o", "text", "output format")
		describeValue(fs, "output", "FORMAT", words("text", "json"))
		return func(in_ input) int {
			name := in_.flags.Name()
			var q explain.Question
			var err error
			if client == "" || to == "" {
				return usageError(in_.stderr, name, "give the request's two ends: --client ADDR --to ADDR")
			}
			if q.Client, err = netip.ParseAddr(client); err != nil || q.Client.Zone() != "" {
				return usageError(in_.stderr, name, "--client %q is not an IP address", client)
			}
			if q.To, err = netip.ParseAddr(to); err != nil || q.To.Zone() != "" {
				return usageError(in_.stderr, name, "--to %q is not an IP address", to)
			}
			q.Client, q.To = q.Client.Unmap(), q.To.Unmap()
			if q.Client.Is4() != q.To.Is4() {
				return usageError(in_.stderr, name, "--client %s and --to %s are of different families; give two IPv4 or two IPv6 addresses", q.Client, q.To)
			}
			if port < 0 || port > 65535 {
				return usageError(in_.stderr, name, "--port %d is not a port (0-65535)", port)
			}
			q.Port, q.In = port, in
			if port != 0 {
				q.Proto = proto
			}
			c.cmd, c.stdin = name, in_.stdin
			return runExplain(c, in_.flags.Changed("config"), q, output, in_.stdout, in_.stderr)
		}
	},
}

func runExplain(c common, named bool, q explain.Question, output string, stdout, stderr io.Writer) int {
	var hints explain.Hints
	if _, err := os.Stat(c.config); named || err == nil || !errors.Is(err, fs.ErrNotExist) {
		l, status, ok := load(c, stderr)
		if !ok {
			return status
		}
		if stopOnReport(l.rep, l, c, stderr) {
			return ExitInvalid
		}
		hints.Host = l.plan.Host
		hints.TableNames = map[uint32]string{}
		for _, ifc := range l.plan.Interfaces {
			hints.TableNames[ifc.Table] = ifc.TableName
		}
		planned := map[record.Rule]bool{}
		for _, r := range l.plan.KernelRules() {
			planned[r.Rule] = true
		}
		slots := l.plan.FollowSlots()
		hints.Owned = func(r routing.Rule) bool {
			return ownership.RuleShape(r) && planned[ownership.RuleOf(r)] ||
				slices.ContainsFunc(slots, func(s record.FollowSlot) bool { return ownership.FollowerRule(s, r) })
		}
	}
	reader, err := kernel.NewReader(nil)
	if err != nil {
		eprintf(stderr, "symroute explain: %v\n", err)
		return ExitSystem
	}
	if _, loaded, err := (&nftables.Ruleset{}).Hash(); err == nil {
		hints.Tracked = loaded
	}
	res, err := explain.Explain(reader, sysctl.Applier{ProcSys: "/proc/sys"}, q, hints)
	if err != nil {
		eprintf(stderr, "symroute explain: %v\n", err)
		var noLink explain.UsageError
		if errors.As(err, &noLink) {
			return ExitInvalid
		}
		return ExitSystem
	}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		io.WriteString(stdout, res.Text())
	}
	if !res.Symmetric {
		return ExitFailed
	}
	return ExitOK
}
