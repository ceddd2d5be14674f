# rebootctl — build, test, lint, demo, bench, package, install.
# Honours CARGO, PREFIX and DESTDIR.

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all build test lint demo bench vm-test

all: build

## build: release binary in target/release/rebootctl
build:
	$(CARGO) build --release --locked

## test: unit tests and integration tests (starts its own etcd on loopback)
test:
	$(CARGO) test --locked

## lint: formatting and clippy with warnings as errors
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

## demo: 5 simulated nodes, one slot, on an etcd it starts itself: timeline and summary (< 2 min)
demo:
	$(CARGO) build --locked --bins --example fleet
	$(CARGO) run --locked --example fleet -- demo

## bench: writes BENCHMARKS.md (binary size, idle RSS/CPU, status and handoff latency, makespan; ~6 min)
bench:
	$(CARGO) build --release --locked --bins --example fleet
	$(CARGO) run --release --locked --example fleet -- bench BENCHMARKS.md

## vm-test: three Debian VMs under qemu install the .deb and really reboot: kernel upgrade, power loss, ... (root; ~16 min; tests/vm/README.md)
vm-test:
	$(MAKE) --no-print-directory package-amd64
	bash tests/vm/vm-test.sh $(PKG_DIST)/$(call pkg_deb,amd64)

-include packaging/package.mk
