package nettest

import (
	"os"
	"os/exec"
	"syscall"
)

// Daemon is a long-running program the test started inside a namespace, on a site's bus (a node's agent): its
// output is kept for the test to read, and it is stopped by its own pid when the test ends.
type Daemon struct {
	proc *process
	log  *syncBuffer
}

// StartDaemon runs bin with args inside ns, with bus as its system bus and env added to the test's environment,
// until the test ends or Stop is called. ip netns exec execs the program in its own place, so the pid is the
// program's. If the test process dies without its cleanups, the kernel kills the program.
func StartDaemon(t T, ns *Netns, bus *Bus, env []string, bin string, args ...string) *Daemon {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name, bin}, args...)...)
	cmd.Env = append(append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address), env...)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d := &Daemon{proc: start(t, cmd, bin), log: log}
	// Registered after start's own stop, so it runs before it: a program a test paused with SIGSTOP is let go on
	// first, so that it ends on the interrupt as it would.
	t.Cleanup(func() { d.proc.cmd.Process.Signal(syscall.SIGCONT) })
	return d
}

// Pid is the program's process id.
func (d *Daemon) Pid() int { return d.proc.cmd.Process.Pid }

// Log is what the program has written so far, stdout and stderr together.
func (d *Daemon) Log() string { return d.log.String() }

// Exited is closed once the program has ended.
func (d *Daemon) Exited() <-chan struct{} { return d.proc.done }

// Signal sends sig to the program alone (SIGSTOP and SIGCONT pause and resume it).
func (d *Daemon) Signal(sig os.Signal) error { return d.proc.cmd.Process.Signal(sig) }

// Stop interrupts the program, kills it if it has not exited within 5 s, and waits for it.
func (d *Daemon) Stop() { d.proc.stop() }
