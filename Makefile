# rebootctl — build, test, lint, demo, bench, package, install.
# Honours CARGO, PREFIX and DESTDIR.

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=
# Installs what a target needs when it is missing (test, vm, ci groups).
DEPS ?= scripts/deps.sh

.PHONY: all build test lint demo bench bench-levers bench-scale vm-test

all: build

## build: release binary in target/release/rebootctl
build:
	$(CARGO) build --release --locked

## test: installs what the tests need when it is missing (scripts/deps.sh),
## then unit and integration tests (they start their own etcd on loopback)
test:
	$(DEPS) test
	$(CARGO) test --locked

## lint: formatting and clippy with warnings as errors
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## demo: 5 simulated nodes, one slot, on an etcd it starts itself: timeline and summary (< 2 min),
## the timeline also drawn into target/demo/timeline.svg;
## without an etcd on the machine it fetches etcd 3.5 into target/tools first (no root)
demo:
	etcd="$$($(DEPS) demo-etcd)" \
	  && $(CARGO) build --locked --bins --example fleet \
	  && REBOOTCTL_TEST_ETCD="$$etcd" $(CARGO) run --locked --example fleet -- demo

## bench: the `bench` section of BENCHMARKS.md (binary size, idle RSS/threads/CPU/etcd requests,
## status and handoff latency, makespan; ~8 min), measured on the binary the amd64 packages ship
bench: bench-bin
	$(CARGO) build --release --locked --bins --example fleet
	REBOOTCTL_BIN=$(BENCH_BIN) $(CARGO) run --release --locked --example fleet -- bench BENCHMARKS.md

## bench-levers: the `levers` section of BENCHMARKS.md: every size lever (opt-level, panic,
## codegen-units, lto, features, musl, the revision before) built and idled (~1 h of builds)
bench-levers:
	$(CARGO) build --release --locked --bins --example fleet
	$(CARGO) run --release --locked --example fleet -- levers BENCHMARKS.md

## bench-scale: the `scale` section of BENCHMARKS.md: a 3-member etcd on loopback and
## SCALE_NODES agents, idle and two rollouts (~10 min; not in CI); SCALE_ARGS adds options
SCALE_NODES ?= 500
SCALE_ARGS ?=
bench-scale: bench-bin
	$(CARGO) build --release --locked --bins --example scale
	ulimit -n "$$(ulimit -Hn)" && REBOOTCTL_BIN=$(BENCH_BIN) $(CARGO) run --release --locked --example scale -- \
	  BENCHMARKS.md --nodes $(SCALE_NODES) $(SCALE_ARGS)

## vm-test: three Debian VMs under qemu install the .deb and really reboot: kernel upgrade, power loss, ... (root; ~16 min; tests/vm/README.md)
vm-test:
	$(MAKE) --no-print-directory package-amd64
	bash tests/vm/vm-test.sh $(PKG_DIST)/$(call pkg_deb,amd64)

-include packaging/package.mk
