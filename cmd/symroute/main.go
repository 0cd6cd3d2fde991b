// Command symroute generates source-based policy routing for multi-homed hosts as systemd-networkd
// configuration. See README.md.
package main

import (
	"os"

	"github.com/symroute/symroute/internal/orchestration/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
