package nettest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the traffic tools: re-executed inside a namespace with helperEnv set, it runs an
// echo server or a client instead of the tests. Traffic so stays between the test's own namespaces, from
// processes the test started and stops by pid.
const helperEnv = "SYMROUTE_NETTEST_HELPER"

// Main runs the helper a re-executed test binary was started as, or else the tests, and returns the exit
// status. Call it from TestMain.
func Main(m *testing.M) int {
	if code, ok := RunHelper(); ok {
		return code
	}
	return m.Run()
}

// RunHelper runs the traffic helper this process was re-executed as, if any; ok is false for a normal start.
func RunHelper() (code int, ok bool) {
	if os.Getenv(helperEnv) == "" {
		return 0, false
	}
	return runHelper(), true
}

func runHelper() int {
	switch os.Getenv(helperEnv) {
	case "echo-server":
		return echoServer(os.Getenv(helperEnv + "_ADDR"))
	case "echo-client":
		return echoClient(os.Getenv(helperEnv+"_ADDR"), os.Getenv(helperEnv+"_SOURCE"))
	}
	fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
	return 2
}

func echoServer(addr string) int {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			return 1
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.Copy(c, c)
		}()
	}
}

// dialTimeout bounds one connection attempt and its echo: a dropped flow fails in seconds.
const dialTimeout = 3 * time.Second

func echoClient(addr, source string) int {
	d := net.Dialer{Timeout: dialTimeout}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		fmt.Println("connect:", err)
		return 1
	}
	defer c.Close()
	// The handshake can succeed on an asymmetric path (the SYN-ACK reaches the client directly); only data
	// that must cross the stateful gateway after it shows whether the flow works.
	c.SetDeadline(time.Now().Add(dialTimeout))
	msg := strings.Repeat("symroute ", 200) + "\n"
	if _, err := io.WriteString(c, msg); err != nil {
		fmt.Println("write:", err)
		return 1
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != msg {
		fmt.Printf("echo: %d of %d bytes back: %v\n", len(got), len(msg), err)
		return 1
	}
	return 0
}

func (n *Netns) helper(mode string, env ...string) *exec.Cmd {
	cmd := exec.Command("ip", "netns", "exec", n.Name, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + mode}, env...)...)
	return cmd
}

// Serve runs a TCP echo server on addr inside the namespace until the test ends.
func (n *Netns) Serve(t T, addr string) {
	t.Helper()
	cmd := n.helper("echo-server", helperEnv+"_ADDR="+addr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start(t, cmd, "echo server")
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("echo server on %s in %s: %q", addr, n.Name, line)
	}
}

// Background runs a shell script inside the namespace until the test ends, or until the returned stop is called.
func (n *Netns) Background(t T, script string) (stop func()) {
	t.Helper()
	return start(t, exec.Command("ip", "netns", "exec", n.Name, "sh", "-c", script), "background script").stop
}

// Echo connects from the namespace to addr (optionally from source), sends data and waits for it back. It returns
// an error describing how the flow failed.
func (n *Netns) Echo(addr, source string) error {
	cmd := n.helper("echo-client", helperEnv+"_ADDR="+addr, helperEnv+"_SOURCE="+source)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -> %s: %v: %s", n.Name, addr, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Hold opens a TCP connection from the namespace to addr (host:port) and keeps it open, idle, until the test ends
// or stop is called: an established connection, as an operator's SSH session is.
func (n *Netns) Hold(t T, addr string) (stop func()) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	return start(t, exec.Command("ip", "netns", "exec", n.Name, "bash", "-c", "exec 3<>/dev/tcp/"+host+"/"+port+" && exec sleep 600"), "held connection").stop
}
