//go:build kubetest

package kubenode

import (
	"os"
	"testing"

	"github.com/symroute/symroute/internal/tools/nettest"
)

// TestMain lets the test binary serve as nettest's helper (the site's echo server and client, its systemd manager).
func TestMain(m *testing.M) { os.Exit(nettest.Main(m)) }
