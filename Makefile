# symroute. `make demo` shows the main job on a shipped example; `make test` runs every test. Both need root:
# they run the real systemd-networkd in network namespaces (`make deps` installs what they need on Debian).
GO      ?= go
# symroute --version prints what these set: git describe's version for a build from source, the package's
# version (PKG_VERSION-PKG_RELEASE, as dpkg and rpm show it) for the binary make packages puts in them.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
version_ldflags = -X github.com/symroute/symroute/internal/orchestration/cli.Version=$(1)
DEMO    ?= examples/two-nic.yaml

NFPM_VERSION ?= v2.43.0
PKG_VERSION  ?= 0.1.0
PKG_RELEASE  ?= 1
PKG_ARCH     ?= amd64

.PHONY: build demo demo-files deps test test-kube fuzz golden bench vet clean packages image

build:
	$(GO) build -ldflags "$(call version_ldflags,$(VERSION))" -o symroute ./cmd/symroute

# The main job end to end: a throwaway topology in network namespaces shows the asymmetric failure, then
# `symroute apply` on the shipped example against the real systemd-networkd fixes it and `symroute verify` passes.
demo: build deps
	@$(GO) run ./internal/tools/demo --symroute ./symroute --example $(DEMO)

# Debian packages the tests and the demo use (systemd-networkd, D-Bus, iproute2, nftables; .ci/install-deps lists them).
deps:
	@./.ci/install-deps

# Generate the files for a shipped example into a scratch root and print them; needs no root.
demo-files: build
	@root=$$(mktemp -d) && \
	./symroute check $(DEMO) --root $$root && \
	./symroute generate $(DEMO) --root $$root && \
	for f in $$(cd $$root && find . -type f | sort); do printf '\n==> %s\n' "$${f#.}"; cat "$$root/$$f"; done; \
	rm -rf "$$root"

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# The namespace scenarios spend their time waiting on networkd, not on the CPU: run more of them at once than
# there are cores.
test: vet deps
	$(GO) test -count=1 -parallel 6 ./...
	@$(MAKE) -s fuzz FUZZTIME=$(TEST_FUZZTIME)

# The tests that need a real kube-apiserver and etcd (build tag kubetest), kept out of make test: the first run on a
# machine builds both from the Go module proxy (minutes, and gigabytes of Go build cache) into KUBETEST_CACHE,
# keyed by version; every later run reuses them. The agent's own tests need no root; the fleet test
# (internal/tools/integration, TestFleet*) runs three network-namespace nodes with the real networkd, as root.
# The tier-2 test (internal/tools/kubenode) runs the DaemonSet of packaging/kubernetes on a real node in network
# namespaces: it also needs kubelet, kube-controller-manager, kube-scheduler and kubectl (built the same way, once:
# about 4.5 minutes cold), and root, containerd, runc and the CNI plugins (make deps).
KUBETEST_CACHE ?= $(or $(XDG_CACHE_HOME),/var/cache)/symroute-kubetest
test-kube:
	@bin=$$($(GO) run -C internal/tools/kubetest/build . -cache $(KUBETEST_CACHE) -go $(GO)) && \
	KUBETEST_BIN_DIR=$$bin $(GO) test -count=1 -tags kubetest -v ./internal/tools/kubetest/ ./internal/orchestration/agent/ && \
	KUBETEST_BIN_DIR=$$bin $(GO) test -count=1 -tags kubetest -run '^(TestFleet|TestAgentNamesOnlyTheSilentGateway)' -v ./internal/tools/integration/
	@bin=$$($(GO) run -C internal/tools/kubetest/build . -cache $(KUBETEST_CACHE) -go $(GO)) && \
	node=$$($(GO) run -C internal/tools/kubetest/build . -cache $(KUBETEST_CACHE) -go $(GO) -node) && \
	KUBETEST_BIN_DIR=$$bin KUBETEST_NODE_BIN_DIR=$$node $(GO) test -count=1 -tags kubetest -v -timeout 30m ./internal/tools/kubenode/

# Fuzz the description parser and the whole check-and-render pipeline, seeded from golden/. make test runs each
# for TEST_FUZZTIME; run longer with e.g. make fuzz FUZZTIME=10m. A failing input is saved under testdata/fuzz/.
# make test counts executions rather than time: Go before 1.27 can fail a timed run at its deadline with
# "context deadline exceeded" and no failing input (golang/go#75804), which a count has no deadline to race.
FUZZTIME      ?= 1m
TEST_FUZZTIME ?= 20000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/core/description/
	$(GO) test -run '^$$' -fuzz '^FuzzPipeline$$' -fuzztime $(FUZZTIME) ./generator/

# Rewrite golden files from the current code; review with git diff.
golden:
	$(GO) test ./... -update

# .deb and .rpm in dist/, built with nfpm (installed from the Go module proxy into .tools/).
packages:
	mkdir -p dist .tools
	test -x .tools/nfpm || GOBIN=$(CURDIR)/.tools $(GO) install github.com/goreleaser/nfpm/v2/cmd/nfpm@$(NFPM_VERSION)
	CGO_ENABLED=0 GOARCH=$(PKG_ARCH) $(GO) build -trimpath -ldflags "$(call version_ldflags,$(PKG_VERSION)-$(PKG_RELEASE))" -o symroute ./cmd/symroute
	gzip -9n < packaging/symroute.8 > dist/symroute.8.gz
	for p in deb rpm; do PKG_VERSION=$(PKG_VERSION) PKG_RELEASE=$(PKG_RELEASE) PKG_ARCH=$(PKG_ARCH) \
		.tools/nfpm package --config packaging/nfpm.yaml --packager $$p --target dist/ || exit 1; done

# The node agent's container image, as an OCI archive built with no container engine (umoci; packaging/image/build.sh):
# the static symroute-agent and nft with the shared libraries it needs. ctr -n k8s.io images import, podman load
# and docker load (25 and later) all take it, named $(IMAGE). The files' times come from the last commit, so the
# same commit builds the same archive. packaging/kubernetes/daemonset.yaml names the same image.
IMAGE_NAME ?= docker.io/symroute/symroute-agent
IMAGE_TAG  ?= $(PKG_VERSION)
IMAGE      ?= $(IMAGE_NAME):$(IMAGE_TAG)
IMAGE_FILE ?= dist/symroute-agent-$(IMAGE_TAG).oci.tar
image:
	mkdir -p dist
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(call version_ldflags,$(PKG_VERSION)-$(PKG_RELEASE))" -o dist/symroute-agent ./cmd/symroute-agent
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0) packaging/image/build.sh dist/symroute-agent $(IMAGE) $(IMAGE_FILE)

bench: build
	bench/generate.sh

clean:
	rm -rf symroute dist
