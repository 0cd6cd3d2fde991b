// Command build puts the kube-apiserver and etcd that internal/tools/kubetest starts into a per-machine cache, at
// the versions this module's go.mod pins, and prints the folder that holds them. A cold build takes minutes and
// gigabytes of Go build cache, so a machine builds each version once and every later run only finds the folder.
//
// With -node it builds and prints instead the folder of what a test node needs besides the API server: kubelet,
// kube-controller-manager, kube-scheduler and kubectl, at the same Kubernetes version. They have a folder of their
// own, so adding them did not invalidate a cache that already held the control plane.
//
// Run it from anywhere: go run -C internal/tools/kubetest/build . [-cache DIR] [-node]
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

const (
	kubernetesModule = "k8s.io/kubernetes"
	etcdModule       = "go.etcd.io/etcd/server/v3"
)

func main() {
	cacheRoot := flag.String("cache", defaultCacheRoot(), "folder that holds one subfolder of binaries per version")
	goCommand := flag.String("go", "go", "the go command to build with")
	node := flag.Bool("node", false, "build kubelet, kube-controller-manager, kube-scheduler and kubectl instead")
	flag.Parse()

	ensure := ensureBinaries
	if *node {
		ensure = ensureNodeBinaries
	}
	binDir, err := ensure(*goCommand, *cacheRoot)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubetest build:", err)
		os.Exit(1)
	}
	// The only line on stdout, so that make can take it as the folder.
	fmt.Println(binDir)
}

// defaultCacheRoot is per machine rather than per checkout: every worktree and CI clone shares one build.
func defaultCacheRoot() string {
	if dir := os.Getenv("XDG_CACHE_HOME"); dir != "" {
		return filepath.Join(dir, "symroute-kubetest")
	}
	return "/var/cache/symroute-kubetest"
}

// binary is one program of a cached set: where it goes in the folder, the package it is built from, and the -X
// flags that set its version.
type binary struct{ name, pkg, versionFlags string }

func ensureBinaries(goCommand, cacheRoot string) (string, error) {
	kubernetesVersion, err := moduleVersion(goCommand, kubernetesModule)
	if err != nil {
		return "", err
	}
	etcdVersion, err := moduleVersion(goCommand, etcdModule)
	if err != nil {
		return "", err
	}
	kubeVersionFlags, err := kubernetesVersionFlags(kubernetesVersion)
	if err != nil {
		return "", err
	}
	key := fmt.Sprintf("kube-apiserver-%s_etcd-%s_%s-%s", kubernetesVersion, etcdVersion, runtime.GOOS, runtime.GOARCH)
	return ensureSet(goCommand, cacheRoot, key, fmt.Sprintf("kube-apiserver %s and etcd %s", kubernetesVersion, etcdVersion), []binary{
		{"kube-apiserver", kubernetesModule + "/cmd/kube-apiserver", kubeVersionFlags},
		// etcd takes its version from a constant in its own source, so it needs no -X.
		{"etcd", etcdModule, ""},
	})
}

// nodeBinaries are the Kubernetes commands a test node runs, and kubectl for the operator's commands.
var nodeBinaries = []string{"kubelet", "kube-controller-manager", "kube-scheduler", "kubectl"}

func ensureNodeBinaries(goCommand, cacheRoot string) (string, error) {
	kubernetesVersion, err := moduleVersion(goCommand, kubernetesModule)
	if err != nil {
		return "", err
	}
	kubeVersionFlags, err := kubernetesVersionFlags(kubernetesVersion)
	if err != nil {
		return "", err
	}
	var set []binary
	for _, name := range nodeBinaries {
		set = append(set, binary{name, kubernetesModule + "/cmd/" + name, kubeVersionFlags})
	}
	key := fmt.Sprintf("kube-node-%s_%s-%s", kubernetesVersion, runtime.GOOS, runtime.GOARCH)
	return ensureSet(goCommand, cacheRoot, key, strings.Join(nodeBinaries, ", ")+" "+kubernetesVersion, set)
}

// ensureSet returns the folder cacheRoot/key once it holds every binary of set, building them there first when it
// does not; what names the set for the log.
func ensureSet(goCommand, cacheRoot, key, what string, set []binary) (string, error) {
	binDir := filepath.Join(cacheRoot, key)
	if complete(binDir, set) {
		return binDir, nil
	}

	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return "", err
	}
	// Two test runs starting at once on a cold machine would each spend minutes on the same build: the second waits.
	unlock, err := lockFile(binDir + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if complete(binDir, set) {
		return binDir, nil
	}

	// Built beside the final folder and renamed into place, so an interrupted build never looks like a cached one.
	partial, err := os.MkdirTemp(cacheRoot, key+".partial-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(partial)

	fmt.Fprintf(os.Stderr, "kubetest build: building %s into %s (minutes on a cold machine)\n", what, binDir)
	for _, b := range set {
		if err := build(goCommand, filepath.Join(partial, b.name), b.versionFlags, b.pkg); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(partial, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(partial, binDir); err != nil {
		return "", err
	}
	return binDir, nil
}

func complete(binDir string, set []binary) bool {
	for _, b := range set {
		if info, err := os.Stat(filepath.Join(binDir, b.name)); err != nil || info.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// moduleVersion reads the version from this module's go.mod, the one place the versions are pinned.
func moduleVersion(goCommand, module string) (string, error) {
	out, err := exec.Command(goCommand, "list", "-m", "-f", "{{.Version}}", module).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return "", fmt.Errorf("go list -m %s: %v: %s", module, err, exitErr.Stderr)
		}
		return "", fmt.Errorf("go list -m %s: %v", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// kubernetesVersionFlags links in the real version: built from the module proxy, without the release's git
// metadata, kube-apiserver would report v0.0.0-master, which clients and the agent's version checks would see.
func kubernetesVersionFlags(version string) (string, error) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return "", fmt.Errorf("unexpected Kubernetes version %q", version)
	}
	const pkg = "k8s.io/component-base/version"
	return fmt.Sprintf("-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean",
		pkg, version, pkg, parts[0], pkg, parts[1], pkg), nil
}

func build(goCommand, output, versionFlags, pkg string) error {
	started := time.Now()
	// -trimpath keeps the machine's paths out of the binaries; -s -w drop the symbol tables (171 MB to 119 MB for
	// kube-apiserver), which the tests never need.
	ldflags := strings.TrimSpace("-s -w " + versionFlags)
	cmd := exec.Command(goCommand, "build", "-trimpath", "-ldflags", ldflags, "-o", output, pkg)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %v", pkg, err)
	}
	fmt.Fprintf(os.Stderr, "kubetest build: %s built in %s\n", filepath.Base(output), time.Since(started).Round(time.Second))
	return nil
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %v", path, err)
	}
	return func() { f.Close() }, nil
}
