package generator

import (
	"strings"

	"github.com/symroute/symroute/internal/core/ownership"
)

// TakesRestart reports whether a change of the file at p from old to new (nil: absent) needs a restart of
// networkd rather than a reload: networkd reads networkd.conf.d only when it starts. A drop-in whose settings stay
// the same (a new header) needs neither. apply and the cloud-init document both decide here.
func TakesRestart(p string, old, new []byte) bool {
	return p == ownership.NetworkdConfPath && (old == nil || new == nil || settings(old) != settings(new))
}

// settings is a configuration file without its comments and blank lines: what networkd reads from it.
func settings(data []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(line); t != "" && t[0] != '#' && t[0] != ';' {
			b.WriteString(t + "\n")
		}
	}
	return b.String()
}
