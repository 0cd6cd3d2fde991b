package cli

import (
	"fmt"
	"io"

	"github.com/symroute/symroute/internal/core/networkfiles"
	"github.com/symroute/symroute/internal/core/ownership"
	"github.com/symroute/symroute/internal/edges/filesync"
	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/edges/rootfs"
	"github.com/symroute/symroute/internal/orchestration/discover"
)

func discoverCmd(args []string, stdout, stderr io.Writer) int {
	var root, output string
	fs := pflagSet("discover", stderr)
	fs.StringVar(&root, "root", "/", "root `directory` whose .network files tell which links another file configures")
	fs.StringVarP(&output, "output", "o", "", "write the description to `file` instead of standard output")
	if status, ok := parseFlags(fs, args, stderr); !ok {
		return status
	}
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
	doc := discover.Describe(inv, files)
	if output == "" {
		stdout.Write(doc)
		return ExitOK
	}
	if err := filesync.WriteFile(output, doc, 0o644); err != nil {
		eprintf(stderr, "symroute discover: %v\n", err)
		return ExitSystem
	}
	fmt.Fprintf(stdout, "wrote %s; review it, then run symroute check -c %s\n", output, output)
	return ExitOK
}
