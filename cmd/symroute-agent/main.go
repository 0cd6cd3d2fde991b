// Command symroute-agent is the node agent the symroute DaemonSet runs: it follows the RoutingPolicy that selects
// its node, as internal/orchestration/agent reconciles it, on watch events and a long resync period. The node is
// named by $NODE_NAME (the downward API's spec.nodeName); the API server is reached in-cluster, or through
// --kubeconfig.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/symroute/symroute/internal/edges/kernel"
	"github.com/symroute/symroute/internal/orchestration/agent"
)

func main() {
	if err := run(); err != nil && !errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "symroute-agent:", err)
		os.Exit(1)
	}
}

func run() error {
	fs := pflag.NewFlagSet("symroute-agent", pflag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "a kubeconfig file; the pod's service account when left out")
	namespace := fs.String("namespace", envOr("POD_NAMESPACE", "symroute"), "the namespace of the rollout's Leases (the agent's own)")
	resync := fs.Duration("resync", 30*time.Minute, "how often the agent reconciles with no event")
	lease := fs.Duration("lease-duration", agent.DefaultLeaseDuration, "how long a node's rollout slot outlives its last renewal")
	root := fs.String("root", "/", "the host's root: where the host's files are, as the agent's container mounts them")
	procSys := fs.String("proc-sys", "/proc/sys", "the host's sysctl tree (a container's own /proc/sys is read-only)")
	wait := fs.Duration("wait", 30*time.Second, "how long an apply waits for networkd and verification")
	checks := fs.Duration("checks-timeout", 30*time.Second, "how long the gateways and the API server have to answer after an apply verified")
	verifyEvery := fs.Duration("verify-every", agent.DefaultVerifyEvery, "how often the agent verifies the node when no change of its routing was seen")
	metricsHost := fs.String("metrics-host", "127.0.0.1", "the address to serve Prometheus metrics on /metrics at (the DaemonSet gives the node's, IPv4 or IPv6)")
	metricsPort := fs.Int("metrics-port", 9479, "the port to serve Prometheus metrics at; 0 for none")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	node := os.Getenv("NODE_NAME")
	if node == "" {
		return fmt.Errorf("NODE_NAME is not set: the DaemonSet sets it from spec.nodeName")
	}
	config, err := restConfig(*kubeconfig)
	if err != nil {
		return err
	}
	// client-go's default, 5 requests a second, made each node's rollout slot outlast its apply by a second of
	// waiting on the client. The agent reads from its watches; what it sends are a few writes per change.
	config.QPS, config.Burst = 50, 100
	kube, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(config)
	if err != nil {
		return err
	}
	host := machine(kube)
	host.Root, host.ProcSys, host.Wait, host.Checks = *root, *procSys, *wait, *checks
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	changes, err := kernel.WatchChanges(ctx)
	if err != nil {
		return fmt.Errorf("watch the node's routing: %w", err)
	}
	a := &agent.Agent{Clients: agent.Clients{Kube: kube, Dynamic: dyn, Metadata: meta}, Node: node, Namespace: *namespace, Host: host,
		LeaseDuration: *lease, Logf: log.Printf, VerifyEvery: *verifyEvery, Changes: changes}
	if *metricsPort != 0 {
		if err := serveMetrics(ctx, net.JoinHostPort(*metricsHost, strconv.Itoa(*metricsPort)), a.MetricsHandler()); err != nil {
			return err
		}
	}
	log.Printf("node %s: following the RoutingPolicies (leases in %s, resync %v)", node, *namespace, *resync)
	return a.Run(ctx, *resync)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return rest.InClusterConfig()
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// machine is the agent's Host: the apply engine's try on this machine, confirmed only when every described gateway
// answers and the API server still does, through the agent's own client (its /readyz, the endpoint a client
// that can reach the API server at all can ask).
func machine(kube kubernetes.Interface) *agent.Machine {
	return &agent.Machine{
		APIReachable: agent.Retrying(func(ctx context.Context) error {
			return kube.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error()
		}),
		Logf: log.Printf,
	}
}

// serveMetrics serves h on address's /metrics until ctx ends. It listens before returning, so a port already taken
// stops the agent at its start, where the DaemonSet's pod shows it.
func serveMetrics(ctx context.Context, address string, h http.Handler) error {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("--metrics-host, --metrics-port: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	context.AfterFunc(ctx, func() { srv.Close() })
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Printf("metrics: %v", err)
		}
	}()
	log.Printf("serving metrics on %s/metrics", ln.Addr())
	return nil
}
