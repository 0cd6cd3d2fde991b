package nettest

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Program lets a command (the demo, a benchmark) use the harness: Fatalf prints and unwinds to Run, and the
// cleanups registered along the way run in reverse order whatever happens.
type Program struct {
	Name     string
	cleanups []func()
	failed   bool
}

type unwind struct{}

// Run runs body and the cleanups, and returns the exit status: 1 when body failed. A reader that stops reading
// (bench | head) must not kill the program before its cleanups remove the namespaces and daemons it started:
// SIGPIPE is ignored, and output to the closed pipe is lost instead.
func (p *Program) Run(body func()) (code int) {
	signal.Ignore(syscall.SIGPIPE)
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(unwind); !ok {
				p.cleanupAll()
				panic(r)
			}
		}
		p.cleanupAll()
		if p.failed {
			code = 1
		}
	}()
	body()
	return 0
}

func (p *Program) cleanupAll() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}

func (p *Program) Helper()                 {}
func (p *Program) Logf(f string, a ...any) { fmt.Printf(f+"\n", a...) }
func (p *Program) Errorf(f string, a ...any) {
	fmt.Fprintf(os.Stderr, p.Name+": "+f+"\n", a...)
	p.failed = true
}
func (p *Program) Fatalf(f string, a ...any) { p.Errorf(f, a...); panic(unwind{}) }
func (p *Program) Fatal(a ...any)            { p.Fatalf("%s", fmt.Sprint(a...)) }
func (p *Program) Skipf(f string, a ...any)  { p.Fatalf("cannot run here: "+f, a...) }
func (p *Program) Cleanup(f func())          { p.cleanups = append(p.cleanups, f) }
func (p *Program) Failed() bool              { return p.failed }

// Check fails the program on a non-nil error.
func (p *Program) Check(err error) {
	if err != nil {
		p.Fatalf("%v", err)
	}
}
