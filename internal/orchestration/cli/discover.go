package cli

import (
	"github.com/spf13/pflag"

	"io"

	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/orchestration/discover"
)

var discoverCommand = &command{
	name:    "discover",
	summary: "print a description of this host as it is now, to start from",
	long: "Reads this host's links, addresses, default routes and rules, and the root's .network files, and prints a " +
		"description to start from: each interface with its addresses and gateways, drop-in mode where another " +
		"file configures the link, and a cni: guess from the links and rules other components made. Review it, " +
		"add cluster_cidrs, check it, then apply it. It prints to standard output only: write it to a file with " +
		"the shell's redirection.",
	examples: []example{
		{"Start a description from the host as it is", "symroute discover > host.yaml"},
	},
	setup: func(fs *pflag.FlagSet) runner {
		var root, output string
		fs.StringVar(&root, "root", "/", "the root whose .network files tell which links another file configures")
		describeValue(fs, "root", "DIR", directories)
		// -o is the output format in every command; YAML is the one a description has.
		fs.StringVarP(&output, "output", "o", "yaml", "output format")
		describeValue(fs, "output", "FORMAT", words("yaml"))
		return func(in input) int { return discoverRun(root, in.stdout, in.stderr) }
	},
}

func discoverRun(root string, stdout, stderr io.Writer) int {
	reader, err := kernel.NewReader(nil)
	if err != nil {
		eprintf(stderr, "symroute discover: %v\n", err)
		return ExitSystem
	}
	inv, err := reader.Inventory()
	if err != nil {
		eprintf(stderr, "symroute discover: %v\n", err)
		return ExitSystem
	}
	r, err := rootfs.Open(root)
	if err != nil {
		eprintf(stderr, "symroute discover: %v\n", err)
		return ExitSystem
	}
	defer r.Close()
	files, err := networkfiles.Load(r.ReadFS(), ownership.IsOwned)
	if err != nil {
		eprintf(stderr, "symroute discover: %v\n", err)
		return ExitSystem
	}
	stdout.Write(discover.Describe(inv, files))
	return ExitOK
}
