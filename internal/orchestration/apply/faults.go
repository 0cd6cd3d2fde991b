//go:build symroute_faults

package apply

import (
	"os"
	"syscall"
)

// The integration tests build symroute with the tag symroute_faults. SYMROUTE_FAULT=die-after-write then kills
// the process right after a phase's files are renamed into place, before networkd hears of them, as a power cut
// or an OOM kill would.
func init() {
	if os.Getenv("SYMROUTE_FAULT") == "die-after-write" {
		afterWrite = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	}
}
