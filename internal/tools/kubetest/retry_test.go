//go:build kubetest

package kubetest

import (
	"net"
	"strconv"
	"testing"
)

// TestKubeStartRetriesWhenAPortIsTaken gives the API server a port another listener holds, as a program binding
// between the port's release and the server's start would: Start must try again on new ports.
func TestKubeStartRetriesWhenAPortIsTaken(t *testing.T) {
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	taken := holder.Addr().(*net.TCPAddr).Port

	calls := 0
	pickLoopbackPorts = func(n int) ([]int, error) {
		calls++
		ports, err := freeLoopbackPorts(n)
		if calls == 1 && err == nil {
			ports[len(ports)-1] = taken // the API server's
		}
		return ports, err
	}
	t.Cleanup(func() { pickLoopbackPorts = freeLoopbackPorts })

	server := Start(t)
	if calls != 2 {
		t.Errorf("ports picked %d times, want 2 (one start on a taken port, one that works)", calls)
	}
	if server.URL == "https://127.0.0.1:"+strconv.Itoa(taken) {
		t.Errorf("server says it is on the taken port %d", taken)
	}
}
