// Command agenthost runs the node agent's Machine (its Host) once, for the integration tests: inside a site's host
// namespace, against its networkd and root, as symroute-agent runs it on a node. It prints the outcome as JSON,
// on a line of its own after "outcome: ", and verify's result after "result: " (the engine's lines go to stderr).
//
//	agenthost --root DIR [--api-fails] [--skip-gateway IFACE] apply FILE
//	agenthost --root DIR verify FILE
//	agenthost --root DIR remove
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/symroute/symroute/internal/core/drift"
	"github.com/symroute/symroute/internal/core/fleet"
	"github.com/symroute/symroute/internal/orchestration/agent"
)

func main() {
	root := flag.String("root", "/", "the system's root")
	apiFails := flag.Bool("api-fails", false, "the API server does not answer")
	skipGateway := flag.String("skip-gateway", "", "an interface whose gateway is not checked, as a policy's spec.checks.skipGateways")
	flag.Parse()
	m := &agent.Machine{
		Root: *root,
		APIReachable: func(context.Context) error {
			if *apiFails {
				return errors.New("connection refused")
			}
			return nil
		},
		// The site's networkd takes a change up in well under a second; short bounds keep a failing check short.
		Wait:   5 * time.Second,
		Checks: 5 * time.Second,
		Logf:   func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) },
	}
	ctx := context.Background()
	var err error
	switch args := flag.Args(); {
	case len(args) == 2 && args[0] == "apply":
		var desc []byte
		if desc, err = os.ReadFile(args[1]); err == nil {
			var out agent.Outcome
			var checks fleet.Checks
			if *skipGateway != "" {
				checks.SkipGateways = []string{*skipGateway}
			}
			out, err = m.Apply(ctx, desc, checks)
			b, _ := json.Marshal(out)
			fmt.Printf("outcome: %s\n", b)
		}
	case len(args) == 2 && args[0] == "verify":
		var desc []byte
		if desc, err = os.ReadFile(args[1]); err == nil {
			var res drift.Result
			if res, err = m.Verify(ctx, desc); err == nil {
				b, _ := json.Marshal(res)
				fmt.Printf("result: %s\n", b)
			}
		}
	case len(args) == 1 && args[0] == "remove":
		err = m.Remove(ctx)
	default:
		err = errors.New("usage: agenthost --root DIR [--api-fails] [--skip-gateway IFACE] apply FILE | verify FILE | remove")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agenthost:", err)
		os.Exit(1)
	}
}
