# symroute. `make demo` shows the main job on a shipped example; `make test` runs every test (as root, the
# integration tests start the real systemd-networkd in network namespaces).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/symroute/symroute/internal/cli.Version=$(VERSION)
DEMO    ?= examples/two-nic.yaml

.PHONY: build demo test golden bench vet clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o symroute ./cmd/symroute

# Generate the files for a shipped example into a scratch root and print them.
demo: build
	@root=$$(mktemp -d) && \
	./symroute check -c $(DEMO) && \
	./symroute generate -c $(DEMO) --root $$root && \
	for f in $$(cd $$root && find . -type f | sort); do printf '\n==> %s\n' "$${f#.}"; cat "$$root/$$f"; done; \
	rm -rf "$$root"

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

test: vet
	$(GO) test -count=1 ./...

# Rewrite golden files from the current code; review with git diff.
golden:
	$(GO) test ./... -update

bench: build
	bench/generate.sh

clean:
	rm -f symroute
