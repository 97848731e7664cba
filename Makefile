# zfw: every verb installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
# sudo may drop Go from PATH; fall back to the standard install location.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
APT_PACKAGES := clang llvm libbpf-dev linux-libc-dev bpftool iproute2
PKGS := ./...

.PHONY: all build generate check-generated test test-unit test-kernels demo bench lint deps-bpf deps-run deps-kernels ziti package package-check fuzz

all: build

build:
	$(GO) build $(PKGS)

# Tools the tests and the demo need at run time: ip for namespaces;
# iptables and nft so the drop-in test can prove no TPROXY rule was made.
deps-run:
	@missing=""; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v iptables-save >/dev/null || missing="$$missing iptables"; \
	command -v nft >/dev/null || missing="$$missing nftables"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# clang and the BPF headers, for regenerating the objects.
deps-bpf:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Regenerate the BPF objects and their Go bindings (committed).
generate: deps-bpf
	$(GO) generate ./internal/bpfobj/

# Fails when the committed objects differ from what the sources build.
check-generated: generate
	@if ! git diff --quiet -- internal/bpfobj; then \
		git --no-pager diff --stat -- internal/bpfobj; \
		echo "generated BPF objects are stale: run 'make generate' and commit"; exit 1; \
	fi

# gofmt, vet and staticcheck (a tool of the module) for Go; clang-format
# with the committed .clang-format for bpf/.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) tool staticcheck $(PKGS)
	@command -v clang-format >/dev/null || apt-get install -y -q clang-format
	clang-format --dry-run --Werror $$(git ls-files 'bpf/*.c' 'bpf/*.h')

# The real OpenZiti binary the integration tests run (built once from its
# own module in testenv/ziti/zitibuild, then cached; $$ZFW_ZITI_BIN skips it).
ziti:
	$(GO) run ./testenv/ziti/cmd/zitibin

# Everything CI runs. Privileged tests need root; with CI=true (or
# ZFW_REQUIRE_PRIVILEGED=1) a skipped privileged test fails the run.
test: deps-run lint check-generated ziti
	$(GO) test -race -count=1 -timeout 30m $(PKGS)

# The kernel matrix: the load test, the BPF test-run tests and namespace
# end-to-end tests on Debian 12's stock 6.1 kernel booted under qemu (TCG)
# from a busybox initramfs, and natively on the host's kernel; one summary
# line per kernel, results in .cache/kernels/results.json (git-ignored).
test-kernels: deps-kernels
	$(GO) run ./internal/kernels/cmd/kernelmatrix -cache .cache/kernels

# qemu, a static busybox, iproute2 (copied into the guest), and apt's
# package lists (the kernel is fetched with apt-get download, never installed).
deps-kernels:
	@missing=""; \
	command -v qemu-system-x86_64 >/dev/null || missing="$$missing qemu-system-x86"; \
	dpkg -s busybox-static >/dev/null 2>&1 || missing="$$missing busybox-static"; \
	{ command -v ip >/dev/null && command -v tc >/dev/null; } || missing="$$missing iproute2"; \
	if [ -n "$$missing" ] || ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then apt-get update -qq; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test-unit:
	$(GO) test -race -count=1 ./intercept/... ./internal/policy/... ./internal/maps/... ./zfw/zfwtest/...

demo: deps-run
	$(GO) run ./examples/demo

# Writes BENCHMARKS.md from one run (about twenty minutes; needs root and
# the ziti binary, which the ziti target builds once). The kernel matrix
# runs first: its load times and verifier counts are a section of the report.
bench: deps-run ziti test-kernels
	$(GO) run ./internal/bench/cmd/benchmarks -o BENCHMARKS.md

# The .deb and .rpm (packaging/, a module of its own): zfw, edge-router and
# ziti-tunnel in /opt/openziti/bin, systemd units zfw-router and zfw-tunnel.
PACKAGE_VERSION ?= 0.1.0+git$(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null).$(shell git rev-parse --short=8 HEAD 2>/dev/null)
package:
	rm -rf dist && mkdir -p dist/bin
	for p in zfw edge-router ziti-tunnel; do \
		CGO_ENABLED=0 $(GO) build -trimpath -o dist/bin/$$p ./examples/$$p || exit 1; \
	done
	cd packaging && $(GO) run . -bin ../dist/bin -docs ../docs -version '$(PACKAGE_VERSION)' -out ../dist

# Installs the .deb on this machine, runs what it installed, checks its
# units, and removes it, leaving nothing behind; checks that the .rpm holds
# the same files (CI runs it).
package-check: package
	@command -v rpm >/dev/null || apt-get install -y -q rpm
	bash packaging/check.sh dist/zfw_*_amd64.deb dist/zfw-*.x86_64.rpm

# Every fuzz target for FUZZTIME each (CI: 30s), one after another: go test
# fuzzes one target at a time. Seeds are in the targets (f.Add) and in
# testdata/fuzz; what a run finds is written there, to commit as a test.
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	./intercept:FuzzValidateAndRules \
	./intercept/ziti:FuzzDecodeConfig \
	./intercept/ziti:FuzzHostTarget \
	./intercept/dns:FuzzAnswer \
	./examples/internal/zfwargs:FuzzParse \
	./zfw/control:FuzzServerAnswer \
	./tproxy:FuzzUDPDemux \
	./tproxy:FuzzOrigDst \
	./zfw:FuzzProgramMatchesReferenceModel
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	done
