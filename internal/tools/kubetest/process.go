package kubetest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is one child a test started, with its output in <Name>.log under the test's dir, stopped by its own pid
// and nothing broader.
type Process struct {
	Name    string
	cmd     *exec.Cmd
	logFile string
	exited  chan struct{}
	waitErr error
}

// StartProcess starts cmd in dir, named name. A cmd without its own Dir runs in dir; without its own Env, with
// PATH alone and a home and a temp dir under dir, so nothing the program writes lands in the machine's; without
// its own Stdout, into the log. If the test binary dies without its cleanup, the kernel ends the child.
func StartProcess(dir, name string, cmd *exec.Cmd) (*Process, error) {
	logFile := filepath.Join(dir, name+".log")
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	if cmd.Dir == "" {
		cmd.Dir = dir
	}
	if cmd.Env == nil {
		home := filepath.Join(dir, "home")
		if err := os.MkdirAll(home, 0o700); err != nil {
			return nil, err
		}
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + dir}
	}
	if cmd.Stdout == nil {
		cmd.Stdout = log
	}
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", name, err)
	}
	p := &Process{Name: name, cmd: cmd, logFile: logFile, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process's pid.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitState says how the process ended, once Exited is closed.
func (p *Process) ExitState() string { return fmt.Sprint(p.cmd.ProcessState) }

// Stop asks the process to end (SIGTERM), and kills it if it has not within timeout.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %v", p.Name, p.Pid(), err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(timeout):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %v", p.Name, p.Pid(), err)
	}
	<-p.exited
	return fmt.Errorf("%s (pid %d) did not end within %s of SIGTERM and was killed", p.Name, p.Pid(), timeout)
}

// LogTail is the last lines of the process's log.
func (p *Process) LogTail(lines int) string {
	data, err := os.ReadFile(p.logFile)
	if err != nil {
		return err.Error()
	}
	return Tail(string(data), lines)
}

// Tail is the last lines of s.
func Tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
