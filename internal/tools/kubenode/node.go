//go:build kubetest

// Package kubenode runs a real Kubernetes node for one test: containerd (Debian's, with runc and the CNI plugins)
// and a kubelet, inside a network namespace that nettest made (the site's host, with its own networkd and bus), and
// kube-controller-manager and kube-scheduler beside the API server internal/tools/kubetest starts, so that a
// DaemonSet gets its pod on the node.
//
// Nothing the node runs touches this machine's network or files. containerd and the kubelet run in the site's
// network namespace and in a mount namespace of their own (private propagation) where every host path the agent's
// DaemonSet mounts is a bind mount of the site's root (a directory the host lacks is made in an overlay whose
// upper layer is the test's), the system bus socket is the site's, and their state, logs and sockets are in the
// test's temp dir. Their pods' cgroups are under a cgroup root of the run's own, removed at the end, and every
// process is stopped by its own pid.
package kubenode

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/symroute/symroute/internal/tools/kubetest"
	"github.com/symroute/symroute/internal/tools/nettest"
	"github.com/symroute/symroute/internal/tools/testenv"
)

// BinDirVar names the variable that holds the folder with kubelet, kube-controller-manager, kube-scheduler and
// kubectl (make test-kube builds them: go run ./internal/tools/kubetest/build -node).
const BinDirVar = "KUBETEST_NODE_BIN_DIR"

// PauseImage is the sandbox image containerd runs for every pod: a Go program that waits for its signal.
const PauseImage = "registry.k8s.io/pause:symroute-kubetest"

// apiPortInNode is the port the API server is forwarded to on the node's loopback.
const apiPortInNode = 6443

const (
	nodeReadyTimeout = 3 * time.Minute
	stopTimeout      = 15 * time.Second
)

// Node is a running node, registered with the cluster under Name.
type Node struct {
	Name string
	// Dir holds containerd's and the kubelet's state, their logs and the pods' logs.
	Dir string
	// ContainerdAddress is containerd's socket, for ctr (CONTAINERD_ADDRESS).
	ContainerdAddress string
	// BinDir holds kubectl and the node's binaries; Kubeconfig is the cluster's admin kubeconfig.
	BinDir, Kubeconfig string
	// CgroupRoot is the kubelet's cgroupRoot, under every hierarchy of /sys/fs/cgroup.
	CgroupRoot string

	site    *nettest.Site
	cluster *kubetest.Server
	holder  *kubetest.Process
	procs   []*kubetest.Process
	t       testing.TB
}

// Options says where the node runs and what the DaemonSet mounts of it.
type Options struct {
	Site    *nettest.Site
	Cluster *kubetest.Server
	// Name is the node's name; NodeIP its InternalIP (an address of the site's host).
	Name, NodeIP string
	// HostPaths are the host paths the node's pods may mount, each bound from the site's root (the DaemonSet's
	// hostPath volumes). /proc paths are the namespace's own and need none.
	HostPaths []string
}

// Start starts the controllers, containerd and the kubelet, imports the pause image and waits until the node is
// Ready. Everything is stopped and removed when t ends.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	binDir := os.Getenv(BinDirVar)
	if binDir == "" {
		testenv.Skipf(t, "needs kubelet, kube-controller-manager, kube-scheduler and kubectl: make test-kube builds them and sets %s", BinDirVar)
	}
	for _, name := range []string{"kubelet", "kube-controller-manager", "kube-scheduler", "kubectl"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			t.Fatalf("%s=%s: %v", BinDirVar, binDir, err)
		}
	}
	for _, p := range [][2]string{{"containerd", "containerd"}, {"ctr", "containerd"}, {"runc", "runc"}, {"/usr/lib/cni/bridge", "containernetworking-plugins"},
		{"umoci", "umoci"}, {"jq", "jq"}, {"nsenter", "util-linux"}, {"nft", "nftables"}} {
		testenv.Program(t, p[0], p[1])
	}
	dir, err := os.MkdirTemp("", "symroute-kubenode-")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: opts.Name, Dir: dir, BinDir: binDir, Kubeconfig: opts.Cluster.KubeconfigFile, site: opts.Site, cluster: opts.Cluster, t: t,
		ContainerdAddress: filepath.Join(dir, "containerd.sock"), CgroupRoot: "/symroute-kubetest-" + filepath.Base(dir)[len("symroute-kubenode-"):]}
	// Cleanups run last-registered first: the processes stop before the cgroups and the dir go.
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	t.Cleanup(n.removeCgroups)
	t.Cleanup(n.stop)

	n.startControllers()
	n.forwardAPIServer()
	n.enterNode(opts.HostPaths)
	n.startContainerd()
	n.importPause()
	n.startKubelet(opts.NodeIP)
	started := time.Now()
	n.waitReady()
	t.Logf("node %s Ready %s after the kubelet started", n.Name, time.Since(started).Round(100*time.Millisecond))
	return n
}

// Kubectl runs kubectl with the admin kubeconfig and returns its output, failing the test on error.
func (n *Node) Kubectl(args ...string) string {
	n.t.Helper()
	out, err := n.TryKubectl(args...)
	if err != nil {
		n.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TryKubectl runs kubectl with the admin kubeconfig and returns its combined output and error.
func (n *Node) TryKubectl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(n.BinDir, "kubectl"), append([]string{"--kubeconfig", n.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Ctr runs ctr against the node's containerd, in the k8s.io namespace the kubelet uses.
func (n *Node) Ctr(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", n.ContainerdAddress, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
	return string(out), err
}

// Env is the environment for an operator's command against this cluster and node: kubectl on PATH with the admin
// kubeconfig, ctr on the node's containerd.
func (n *Node) Env() []string {
	return append(os.Environ(), "PATH="+n.BinDir+":"+os.Getenv("PATH"), "KUBECONFIG="+n.Kubeconfig, "CONTAINERD_ADDRESS="+n.ContainerdAddress)
}

// PodLogs returns what the node's pods logged, file by file.
func (n *Node) PodLogs() string {
	var b strings.Builder
	filepath.Walk(filepath.Join(n.Dir, "pod-logs"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "==> %s\n%s\n", p, kubetest.Tail(string(data), 60))
		}
		return nil
	})
	return b.String()
}

// LogTail returns the last lines of one of the node's own processes' logs (containerd, kubelet, kube-scheduler,
// kube-controller-manager, the namespace holder).
func (n *Node) LogTail(name string, lines int) string {
	for _, p := range append(slices.Clone(n.procs), n.holder) {
		if p != nil && p.Name == name {
			return p.LogTail(lines)
		}
	}
	return name + " was not started"
}

// startControllers runs kube-controller-manager (the DaemonSet controller, the namespace and garbage collectors,
// the service accounts and the root CA each namespace's pods mount) and kube-scheduler, which places DaemonSet
// pods, in the root namespace beside the API server. Neither serves anything.
func (n *Node) startControllers() {
	n.t.Helper()
	n.start("kube-controller-manager", nil, filepath.Join(n.BinDir, "kube-controller-manager"),
		"--kubeconfig="+n.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=daemonset-controller,garbage-collector-controller,namespace-controller,root-ca-certificate-publisher-controller,serviceaccount-controller",
		"--root-ca-file="+n.cluster.CAFile,
		"--use-service-account-credentials=false",
		"--v=2",
	)
	n.start("kube-scheduler", nil, filepath.Join(n.BinDir, "kube-scheduler"),
		"--kubeconfig="+n.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	)
}

// forwardAPIServer makes the API server, which listens on the root namespace's loopback, reachable from the node:
// nettest's forwarder, listening inside the node's namespace at 127.0.0.1:apiPortInNode, and, standing in for
// kube-proxy, a DNAT there from the kubernetes Service's address, which in-cluster clients use, to it. Nothing is
// added to the root namespace.
func (n *Node) forwardAPIServer() {
	n.t.Helper()
	n.site.Host.ForwardAt(n.t, fmt.Sprintf("127.0.0.1:%d", apiPortInNode), strings.TrimPrefix(n.cluster.URL, "https://"))
	service := serviceAddress()
	n.site.Host.Exec("nft", fmt.Sprintf("add table ip kubetest-service; add chain ip kubetest-service out { type nat hook output priority -100; }; "+
		"add rule ip kubetest-service out ip daddr %s tcp dport 443 dnat to 127.0.0.1:%d", service, apiPortInNode))
	// Locally made packets DNATed to loopback from another local address.
	n.site.Host.Exec("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
}

// serviceAddress is the kubernetes Service's address: the first of the service range.
func serviceAddress() netip.Addr {
	return netip.MustParsePrefix(kubetest.ServiceClusterIPRange).Addr().Next()
}

// enterNode starts the process that holds the node's mount namespace: in the site's host network namespace, a
// private mount namespace where each of hostPaths is a bind mount of the site's root (and the system bus socket the
// site's bus), and the kubelet's /var/log/containers the test's. containerd and the kubelet join it with nsenter.
func (n *Node) enterNode(hostPaths []string) {
	n.t.Helper()
	binds := map[string]string{"/var/log/containers": filepath.Join(n.Dir, "var-log-containers")}
	for _, p := range hostPaths {
		if strings.HasPrefix(p, "/proc/") {
			continue
		}
		binds[p] = filepath.Join(n.site.Root, p)
	}
	for _, source := range binds {
		if err := os.MkdirAll(source, 0o755); err != nil {
			n.t.Fatal(err)
		}
	}
	bus := strings.TrimPrefix(n.site.Bus.Address, "unix:path=")
	socket := filepath.Join(n.site.Root, "run/dbus/system_bus_socket")
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(socket, nil, 0o644); err != nil {
		n.t.Fatal(err)
	}

	// A directory the host lacks needs a mount point: an overlay on its deepest existing parent, with the test's
	// upper layer, takes the mkdir without changing the host's tree.
	var overlays []string
	for target := range binds {
		if _, err := os.Stat(target); err == nil {
			continue
		}
		parent := filepath.Dir(target)
		for {
			if _, err := os.Stat(parent); err == nil {
				break
			}
			parent = filepath.Dir(parent)
		}
		if !slices.Contains(overlays, parent) {
			overlays = append(overlays, parent)
		}
	}
	sort.Strings(overlays)
	var script strings.Builder
	script.WriteString("set -e\n")
	var done []string
	for i, o := range overlays {
		if slices.ContainsFunc(done, func(d string) bool { return strings.HasPrefix(o+"/", d+"/") }) {
			continue // inside an overlay already
		}
		layer := filepath.Join(n.Dir, "overlay", strconv.Itoa(i))
		for _, d := range []string{"upper", "work"} {
			if err := os.MkdirAll(filepath.Join(layer, d), 0o755); err != nil {
				n.t.Fatal(err)
			}
		}
		fmt.Fprintf(&script, "mount -t overlay overlay -o lowerdir=%s,upperdir=%s/upper,workdir=%s/work %s\n", o, layer, layer, o)
		done = append(done, o)
	}
	targets := make([]string, 0, len(binds))
	for target := range binds {
		targets = append(targets, target)
	}
	sort.Strings(targets)
	for _, target := range targets {
		fmt.Fprintf(&script, "mkdir -p %s\nmount --bind %s %s\n", target, binds[target], target)
	}
	fmt.Fprintf(&script, "mount --bind %s /run/dbus/system_bus_socket\n", bus)
	script.WriteString("echo ready\nexec sleep 2147483647\n")

	cmd := exec.Command("nsenter", "--net=/run/netns/"+n.site.Host.Name, "unshare", "--mount", "--propagation", "private", "sh", "-c", script.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		n.t.Fatal(err)
	}
	n.holder = n.startCmd("node-namespace", cmd)
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && line != "ready\n" {
			err = fmt.Errorf("printed %q", line)
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			n.t.Fatalf("the node's mount namespace: %v\n%s\nscript:\n%s", err, n.LogTail("node-namespace", 20), script.String())
		}
	case <-time.After(30 * time.Second):
		n.t.Fatalf("the node's mount namespace was not ready within 30 s:\n%s", n.LogTail("node-namespace", 20))
	}
}

// inNode is how a program is started in the node: in the holder's network and mount namespaces.
func (n *Node) inNode(binary string, args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--target", strconv.Itoa(n.holder.Pid()), "--mount", "--net", "--", binary}, args...)...)
}

const containerdConfig = `version = 2
root = "%[1]s/containerd/root"
state = "%[1]s/containerd/state"
[grpc]
  address = "%[1]s/containerd.sock"
[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[2]s"
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "%[1]s/runc-wrapper"
        Root = "%[1]s/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%[1]s/cni"
`

// runcWrapper raises a negative oomScoreAdj in the bundle to 0 before runc runs: this machine does not let root
// lower a process's OOM score, and runc fails the container (the kubelet asks -998 for the sandbox) otherwise.
const runcWrapper = `#!/bin/sh
bundle= prev=
for a in "$@"; do
  [ "$prev" = --bundle ] && bundle=$a
  case $a in --bundle=*) bundle=${a#--bundle=} ;; esac
  prev=$a
done
if [ -n "$bundle" ] && [ -f "$bundle/config.json" ]; then
  jq 'if (.process.oomScoreAdj // 0) < 0 then .process.oomScoreAdj = 0 else . end' "$bundle/config.json" > "$bundle/config.json.kubenode" &&
    mv "$bundle/config.json.kubenode" "$bundle/config.json"
fi
exec runc "$@"
`

// The node needs a CNI configuration to be Ready; the pods here use the host's network, so it is never run.
const cniConfig = `{"cniVersion": "1.0.0", "name": "kubenode", "plugins": [{"type": "bridge", "bridge": "kubenode0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]], "dataDir": "%s/cni-ipam"}}]}`

func (n *Node) startContainerd() {
	n.t.Helper()
	n.writeFile("containerd.toml", fmt.Sprintf(containerdConfig, n.Dir, PauseImage), 0o644)
	n.writeFile("runc-wrapper", runcWrapper, 0o755)
	n.writeFile("cni/10-kubenode.conflist", fmt.Sprintf(cniConfig, n.Dir), 0o644)
	n.start("containerd", n.inNode("containerd", "--config", filepath.Join(n.Dir, "containerd.toml")), "")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := n.Ctr("version"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("containerd did not answer within 60 s:\n%s", n.LogTail("containerd", 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// importPause builds the pause image the way make image builds the agent's (packaging/image/build.sh) from a Go
// program that waits for its signal, and imports it.
func (n *Node) importPause() {
	n.t.Helper()
	src := filepath.Join(n.Dir, "pause")
	n.writeFile("pause/main.go", "package main\n\nimport (\n\t\"os\"\n\t\"os/signal\"\n\t\"syscall\"\n)\n\n"+
		"func main() {\n\tc := make(chan os.Signal, 1)\n\tsignal.Notify(c, syscall.SIGTERM, syscall.SIGINT)\n\t<-c\n}\n", 0o644)
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(src, "pause"), "main.go")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		n.t.Fatalf("build the pause program: %v\n%s", err, out)
	}
	archive := filepath.Join(src, "pause.oci.tar")
	image := exec.Command(filepath.Join(RepoRoot(n.t), "packaging/image/build.sh"), filepath.Join(src, "pause"), PauseImage, archive)
	image.Env = append(os.Environ(), "ENTRYPOINT=/pause", "NFT=none", "SOURCE_DATE_EPOCH=0")
	if out, err := image.CombinedOutput(); err != nil {
		n.t.Fatalf("build the pause image: %v\n%s", err, out)
	}
	if out, err := n.Ctr("images", "import", archive); err != nil {
		n.t.Fatalf("import the pause image: %v\n%s", err, out)
	}
}

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://%[1]s/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupRoot: %[2]s
cgroupsPerQOS: true
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %[3]s}
authorization: {mode: AlwaysAllow}
readOnlyPort: 0
healthzPort: 0
port: 10250
podLogsDir: %[1]s/pod-logs
resolvConf: %[1]s/resolv.conf
registerNode: true
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", nodefs.inodesFree: "1%%", imagefs.available: "1%%"}
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
`

func (n *Node) startKubelet(nodeIP string) {
	n.t.Helper()
	n.makeCgroupRoot()
	n.writeFile("kubelet.yaml", fmt.Sprintf(kubeletConfig, n.Dir, n.CgroupRoot, n.cluster.CAFile), 0o644)
	n.writeFile("resolv.conf", "nameserver 127.0.0.53\n", 0o644)
	if err := os.MkdirAll(filepath.Join(n.Dir, "pod-logs"), 0o755); err != nil {
		n.t.Fatal(err)
	}
	// The admin's identity (the API server authorizes by RBAC alone, without the Node authorizer the kubelet's own
	// group would need), at the forwarder's address in the node.
	kubeconfig, err := os.ReadFile(n.Kubeconfig)
	if err != nil {
		n.t.Fatal(err)
	}
	n.writeFile("kubelet.kubeconfig", strings.Replace(string(kubeconfig), n.cluster.URL, fmt.Sprintf("https://127.0.0.1:%d", apiPortInNode), 1), 0o600)
	n.start("kubelet", n.inNode(filepath.Join(n.BinDir, "kubelet"),
		"--config="+filepath.Join(n.Dir, "kubelet.yaml"),
		"--kubeconfig="+filepath.Join(n.Dir, "kubelet.kubeconfig"),
		"--root-dir="+filepath.Join(n.Dir, "kubelet"),
		"--cert-dir="+filepath.Join(n.Dir, "kubelet-pki"),
		"--hostname-override="+n.Name,
		"--node-ip="+nodeIP,
		"--v=1",
	), "")
}

func (n *Node) waitReady() {
	n.t.Helper()
	deadline := time.Now().Add(nodeReadyTimeout)
	for {
		out, err := n.TryKubectl("get", "node", n.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err == nil && out == "True" {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("node %s not Ready within %s (%s %v)\nkubelet:\n%s\ncontainerd:\n%s", n.Name, nodeReadyTimeout, out, err,
				n.LogTail("kubelet", 40), n.LogTail("containerd", 20))
		}
		time.Sleep(time.Second)
	}
}

func (n *Node) writeFile(rel, data string, mode os.FileMode) {
	n.t.Helper()
	p := filepath.Join(n.Dir, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		n.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		n.t.Fatal(err)
	}
}

// cgroupHierarchies are the directories under /sys/fs/cgroup (one per v1 controller, the named systemd one and
// the unified one of a hybrid host), without the links that name combined controllers twice.
func cgroupHierarchies() []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Type()&os.ModeSymlink == 0 {
			out = append(out, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	return out
}

// makeCgroupRoot makes the kubelet's cgroupRoot in every hierarchy (the kubelet requires it to exist), with the
// cpuset of the top, which a new cpuset cgroup does not inherit.
func (n *Node) makeCgroupRoot() {
	n.t.Helper()
	for _, h := range cgroupHierarchies() {
		d := filepath.Join(h, n.CgroupRoot)
		if err := os.Mkdir(d, 0o755); err != nil {
			n.t.Fatalf("cgroup root: %v", err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err == nil {
					err = os.WriteFile(filepath.Join(d, f), v, 0o644)
				}
				if err != nil {
					n.t.Fatalf("cgroup root: %v", err)
				}
			}
		}
	}
}

// removeCgroups kills what is left in the run's cgroups (only the node's containers can be there) and removes
// them, deepest first.
func (n *Node) removeCgroups() {
	deadline := time.Now().Add(30 * time.Second)
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, n.CgroupRoot)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		for {
			var dirs []string
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			var failed error
			for i := len(dirs) - 1; i >= 0; i-- {
				if procs, err := os.ReadFile(filepath.Join(dirs[i], "cgroup.procs")); err == nil {
					for _, f := range strings.Fields(string(procs)) {
						if pid, err := strconv.Atoi(f); err == nil {
							syscall.Kill(pid, syscall.SIGKILL)
						}
					}
				}
				if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
					failed = err
				}
			}
			if failed == nil {
				break
			}
			if time.Now().After(deadline) {
				n.t.Errorf("remove cgroup %s: %v", root, failed)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// stop ends what the node runs: the pods' containers through containerd, then the kubelet, containerd and the
// shims it started (found by the socket address only this containerd has), the controllers, the namespace holder
// and the forwarder.
func (n *Node) stop() {
	if n.t.Failed() {
		for _, p := range n.procs {
			select {
			case <-p.Exited():
				n.t.Logf("%s (pid %d) had exited: %s", p.Name, p.Pid(), p.ExitState())
			default:
			}
		}
		for _, name := range []string{"kubelet", "containerd", "kube-controller-manager", "kube-scheduler"} {
			n.t.Logf("last lines of %s's log:\n%s", name, n.LogTail(name, 30))
		}
		n.t.Logf("pod logs:\n%s", n.PodLogs())
	}
	var kubelet, containerd *kubetest.Process
	for _, p := range n.procs {
		switch p.Name {
		case "kubelet":
			kubelet = p
		case "containerd":
			containerd = p
		}
	}
	if kubelet != nil {
		n.stopProcess(kubelet)
	}
	if containerd != nil {
		if out, err := n.Ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				n.Ctr("tasks", "kill", "-s", "SIGKILL", id)
				n.Ctr("tasks", "delete", "-f", id)
			}
		}
		n.stopProcess(containerd)
	}
	for _, pid := range n.shims() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	for i := len(n.procs) - 1; i >= 0; i-- {
		n.stopProcess(n.procs[i])
	}
	if n.holder != nil {
		n.stopProcess(n.holder)
	}
	if left := n.shims(); len(left) > 0 {
		n.t.Errorf("containerd shims still running: %v", left)
	}
}

// shims are the containerd-shim processes of this node's containerd: their command line names its socket.
func (n *Node) shims() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") && slices.Contains(args, n.ContainerdAddress) {
			out = append(out, pid)
		}
	}
	return out
}

// start starts cmd (binary with args, when cmd is nil) with its output in <name>.log under Dir, environment
// included: the node's daemons take the test's PATH and its own home and temp dir, nothing of the machine's.
func (n *Node) start(name string, cmd *exec.Cmd, binary string, args ...string) *kubetest.Process {
	n.t.Helper()
	if cmd == nil {
		cmd = exec.Command(binary, args...)
	}
	p := n.startCmd(name, cmd)
	n.procs = append(n.procs, p)
	return p
}

func (n *Node) startCmd(name string, cmd *exec.Cmd) *kubetest.Process {
	n.t.Helper()
	p, err := kubetest.StartProcess(n.Dir, name, cmd)
	if err != nil {
		n.t.Fatal(err)
	}
	return p
}

func (n *Node) stopProcess(p *kubetest.Process) {
	if err := p.Stop(stopTimeout); err != nil {
		n.t.Log(err)
	}
}

// RepoRoot is the repository's top folder, where make and the operator's commands run.
func RepoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}
