// Package kubetest starts a real etcd and kube-apiserver for one test: in the test's own temp dir, on free
// loopback ports, with certificates made for it alone, and stopped by their own pids when the test ends. It
// touches nothing on the host beyond that dir and those two processes, so tests may run it side by side.
//
// The binaries come from internal/tools/kubetest/build (a module of its own, so symroute's go.mod takes none of
// the API server's dependencies): make test-kube builds them into a per-machine cache and names the folder in
// BinDirVar.
package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/tools/testenv"
)

// BinDirVar names the variable that holds the folder with the kube-apiserver and etcd binaries.
const BinDirVar = "KUBETEST_BIN_DIR"

// ServiceClusterIPRange is the range the API server allocates Service addresses from. Nothing routes it: it only
// has to be given, and 10.0.0.0/24 is the API server's own default when it is not.
const ServiceClusterIPRange = "10.0.0.0/24"

const (
	etcdReadyTimeout      = 30 * time.Second
	apiServerReadyTimeout = 90 * time.Second
	stopTimeout           = 10 * time.Second
	// One readiness check; on loopback an answer, even "not ready", takes milliseconds.
	pollTimeout = 5 * time.Second
)

// Server is a running control plane. Its files stay under Dir until the test ends.
type Server struct {
	// URL is the API server's address, https://127.0.0.1:PORT.
	URL string
	// KubeconfigFile holds an admin kubeconfig (certificates inline), for kubectl or client-go.
	KubeconfigFile string
	// CAFile is the CA that signed the serving certificate and every client certificate.
	CAFile string
	// AdminCertFile and AdminKeyFile are a client certificate in the system:masters group.
	AdminCertFile, AdminKeyFile string
	// Dir is the test's temp dir: certificates, etcd's data, both processes' logs.
	Dir string
	// ReadyAfter is from starting etcd to the API server answering /readyz; APIServerReadyAfter counts from
	// starting the API server alone.
	ReadyAfter, APIServerReadyAfter time.Duration

	apiServer, etcd *Process
}

// Start starts etcd and kube-apiserver for t and waits until the API server is ready; both are stopped and the dir
// removed when t ends. Without BinDirVar it skips (or fails, where testenv requires every test to run).
func Start(t testing.TB) *Server {
	t.Helper()
	binDir := os.Getenv(BinDirVar)
	if binDir == "" {
		testenv.Skipf(t, "needs kube-apiserver and etcd: make test-kube builds them and sets %s", BinDirVar)
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			t.Fatalf("%s=%s: %v", BinDirVar, binDir, err)
		}
	}
	// t.TempDir's removal is registered before the processes' stop, so it runs after it: nothing is deleted under
	// a process that still writes there.
	s := &Server{Dir: t.TempDir()}
	t.Cleanup(func() { s.stop(t) })
	// The free ports are released before the processes bind them, so another program can take one in between:
	// then the start is tried again on new ports.
	for attempt := 1; ; attempt++ {
		err := s.start(binDir)
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == startAttempts {
			t.Fatalf("kubetest: %v", err)
		}
		t.Logf("kubetest: start %d of %d: %v", attempt, startAttempts, err)
		s.stop(t)
		s.apiServer, s.etcd = nil, nil
		if err := os.RemoveAll(filepath.Join(s.Dir, "etcd")); err != nil {
			t.Fatalf("kubetest: %v", err)
		}
	}
}

// errPortTaken is a process ending because another program bound its port first.
var errPortTaken = errors.New("a port was taken before the process bound it")

const startAttempts = 3

func (s *Server) start(binDir string) error {
	started := time.Now()
	ca, err := newPKI(filepath.Join(s.Dir, "pki"))
	if err != nil {
		return err
	}
	s.CAFile = ca.caFile()
	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	etcdServing, err := ca.serving("etcd", []string{"localhost"}, loopback)
	if err != nil {
		return err
	}
	etcdClient, err := ca.client("apiserver-etcd-client", "kube-apiserver-etcd-client")
	if err != nil {
		return err
	}
	// The names and the Service address are those in-cluster clients use for the API server, so the same
	// certificate serves them once a later test runs pods.
	apiServing, err := ca.serving("apiserver",
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		append(loopback, net.ParseIP("10.0.0.1")))
	if err != nil {
		return err
	}
	admin, err := ca.client("admin", "kubetest-admin", "system:masters")
	if err != nil {
		return err
	}
	s.AdminCertFile, s.AdminKeyFile = admin.certFile, admin.keyFile
	serviceAccountPublic, serviceAccountPrivate, err := ca.serviceAccountKeys()
	if err != nil {
		return err
	}

	ports, err := pickLoopbackPorts(3)
	if err != nil {
		return err
	}
	etcdClientPort, etcdPeerPort, apiServerPort := ports[0], ports[1], ports[2]
	etcdURL := fmt.Sprintf("https://127.0.0.1:%d", etcdClientPort)
	// Only the one member listens on the peer port; nothing crosses it, so it needs no TLS.
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeerPort)
	s.URL = fmt.Sprintf("https://127.0.0.1:%d", apiServerPort)

	s.etcd, err = StartProcess(s.Dir, "etcd", exec.Command(filepath.Join(binDir, "etcd"),
		"--name=kubetest",
		"--data-dir="+filepath.Join(s.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		"--cert-file="+etcdServing.certFile,
		"--key-file="+etcdServing.keyFile,
		"--trusted-ca-file="+s.CAFile,
		"--client-cert-auth",
		// A test's data is thrown away with its dir; fsync would only slow every write.
		"--unsafe-no-fsync",
		"--log-level=warn",
	))
	if err != nil {
		return err
	}
	etcdHTTP, err := s.httpClient(etcdClient)
	if err != nil {
		return err
	}
	if err := waitHealthy(etcdHTTP, etcdURL+"/health", s.etcd, etcdReadyTimeout); err != nil {
		return err
	}

	apiServerStarted := time.Now()
	s.apiServer, err = StartProcess(s.Dir, "kube-apiserver", exec.Command(filepath.Join(binDir, "kube-apiserver"),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(apiServerPort),
		"--tls-cert-file="+apiServing.certFile,
		"--tls-private-key-file="+apiServing.keyFile,
		// Given the files above it writes no certificate, but its default --cert-dir is on the host.
		"--cert-dir="+filepath.Join(s.Dir, "apiserver-certs"),
		"--client-ca-file="+s.CAFile,
		"--etcd-servers="+etcdURL,
		"--etcd-cafile="+s.CAFile,
		"--etcd-certfile="+etcdClient.certFile,
		"--etcd-keyfile="+etcdClient.keyFile,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+serviceAccountPublic,
		"--service-account-signing-key-file="+serviceAccountPrivate,
		"--service-cluster-ip-range="+ServiceClusterIPRange,
		// The default reconciler refuses a loopback advertise address, and no other API server shares this etcd.
		"--endpoint-reconciler-type=none",
		// RBAC as in a real cluster, so a later test that acts as the agent's service account meets real denials.
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--profiling=false",
	))
	if err != nil {
		return err
	}
	adminHTTP, err := s.AdminClient()
	if err != nil {
		return err
	}
	if err := waitHealthy(adminHTTP, s.URL+"/readyz", s.apiServer, apiServerReadyTimeout); err != nil {
		return err
	}
	s.APIServerReadyAfter = time.Since(apiServerStarted)
	s.ReadyAfter = time.Since(started)

	s.KubeconfigFile = filepath.Join(s.Dir, "admin.kubeconfig")
	return s.writeKubeconfig(ca)
}

// AdminClient returns an HTTP client that trusts the test's CA and presents the admin certificate.
func (s *Server) AdminClient() (*http.Client, error) {
	return s.httpClient(keyPair{certFile: s.AdminCertFile, keyFile: s.AdminKeyFile})
}

func (s *Server) httpClient(identity keyPair) (*http.Client, error) {
	caPEM, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("no certificate in %s", s.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(identity.certFile, identity.keyFile)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			// Never a proxy from the environment: the server is on loopback.
			Proxy:           nil,
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		},
	}, nil
}

// APIServerPID and EtcdPID are the processes' pids, for measuring them.
func (s *Server) APIServerPID() int { return s.apiServer.Pid() }
func (s *Server) EtcdPID() int      { return s.etcd.Pid() }

// ResidentBytes reads a process's resident memory (VmRSS) from /proc.
func ResidentBytes(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	scanner := bufio.NewScanner(bytes.NewReader(status))
	for scanner.Scan() {
		value, found := strings.CutPrefix(scanner.Text(), "VmRSS:")
		if !found {
			continue
		}
		kilobytes, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/status: VmRSS %q: %v", pid, value, err)
		}
		return kilobytes * 1024, nil
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}

func (s *Server) writeKubeconfig(ca *pki) error {
	adminCert, err := os.ReadFile(s.AdminCertFile)
	if err != nil {
		return err
	}
	adminKey, err := os.ReadFile(s.AdminKeyFile)
	if err != nil {
		return err
	}
	encode := base64.StdEncoding.EncodeToString
	// Certificates inline, so the file works wherever it is copied; JSON-compatible YAML needs no library.
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: kubetest-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: kubetest-admin
current-context: kubetest
`, s.URL, encode(ca.caPEM()), encode(adminCert), encode(adminKey))
	return os.WriteFile(s.KubeconfigFile, []byte(kubeconfig), 0o600)
}

// stop ends the API server before etcd, so the API server's last writes are not errors in its log.
func (s *Server) stop(t testing.TB) {
	for _, p := range []*Process{s.apiServer, s.etcd} {
		if p == nil {
			continue
		}
		if err := p.Stop(stopTimeout); err != nil {
			t.Errorf("kubetest: %v", err)
		}
	}
	if t.Failed() {
		for _, p := range []*Process{s.etcd, s.apiServer} {
			if p != nil {
				t.Logf("last lines of %s's log:\n%s", p.Name, p.LogTail(40))
			}
		}
	}
}

// waitHealthy polls url until it answers 200, failing early, with the log's last lines, if the process exits.
func waitHealthy(client *http.Client, url string, p *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	lastProblem := "no answer yet"
	for {
		select {
		case <-p.Exited():
			tail := p.LogTail(20)
			if strings.Contains(tail, "address already in use") {
				return fmt.Errorf("%s: %w", p.Name, errPortTaken)
			}
			return fmt.Errorf("%s exited before it was ready (%v); last lines of its log:\n%s", p.Name, p.waitErr, tail)
		default:
		}
		status, err := statusUnlessExited(client, url, p)
		if err == nil {
			if status == http.StatusOK {
				return nil
			}
			lastProblem = http.StatusText(status)
		} else {
			lastProblem = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s (%s: %s); last lines of its log:\n%s", p.Name, timeout, url, lastProblem, p.LogTail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pickLoopbackPorts is freeLoopbackPorts but for a test that hands out a taken port.
var pickLoopbackPorts = freeLoopbackPorts

// statusUnlessExited gives up on a request when the process exits: a port it failed to bind may belong to a
// program that accepts the connection and never answers.
func statusUnlessExited(client *http.Client, url string, p *Process) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pollTimeout)
	defer cancel()
	go func() {
		select {
		case <-p.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	response, err := client.Do(request)
	if err != nil {
		return 0, err
	}
	response.Body.Close()
	return response.StatusCode, nil
}

// freeLoopbackPorts holds n listeners open at once, so the ports differ, and releases them for the processes to
// bind (Start tries again if another program takes one in between).
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
