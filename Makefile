# rebootctl — build, test, lint, demo, bench, package, install.
# Honours CARGO, PREFIX and DESTDIR.

CARGO ?= cargo
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all build test lint demo bench

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

-include packaging/package.mk
