#!/bin/sh
# packaging/repro-check.sh: build the packages of HEAD twice, from two fresh
# clones in differently named temporary directories, each with its own
# cargo target directory, and check that the binaries, .deb, .rpm and SBOM
# files are byte-identical. Prints the sha256 of every artefact of both
# builds. Uncommitted changes are not part of the check (it builds the
# commit). ARCH is passed to make package (default: as make package).
# Unsigned builds: signatures carry their own time and are never identical.
set -eu

make=${MAKE:-make}
top=$(git rev-parse --show-toplevel)
commit=$(git -C "$top" rev-parse HEAD)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -z "$(git -C "$top" status --porcelain --untracked-files=no)" ] \
    || echo "repro-check: note: uncommitted changes are not built, only $commit"

build() { # build DIR
    git clone --quiet --no-hardlinks "$top" "$1"
    git -C "$1" checkout --quiet --detach "$commit"
    echo "== make package in $1 (commit $(git -C "$1" rev-parse --short HEAD))"
    start=$(date +%s)
    (cd "$1" && env -u CARGO_TARGET_DIR -u SIGN_KEY_ID "$make" --no-print-directory package ${ARCH:+ARCH="$ARCH"}) \
        > "$1.log" 2>&1 || { tail -n 40 "$1.log" >&2; echo "repro-check: make package failed in $1" >&2; exit 1; }
    echo "   $(( $(date +%s) - start ))s"
    # The binaries as built, before nfpm, next to the packages.
    mkdir -p "$1/dist/bin"
    for bin in "$1"/target/release/rebootctl "$1"/target/*/release/rebootctl; do
        [ -f "$bin" ] || continue
        triple=$(basename "$(dirname "$(dirname "$bin")")")
        [ "$triple" = target ] && triple=native
        cp "$bin" "$1/dist/bin/rebootctl.$triple"
    done
}

build "$tmp/one/rebootctl"
build "$tmp/second-build/src"

sums() { (cd "$1/dist" && find . -maxdepth 2 -type f \( -name '*.deb' -o -name '*.rpm' -o -name '*.cdx.json' \
    -o -name SHA256SUMS -o -path './bin/*' \) | sed 's|^\./||' | sort | xargs sha256sum); }
sums "$tmp/one/rebootctl" > "$tmp/one.sums"
sums "$tmp/second-build/src" > "$tmp/two.sums"

echo
echo "== sha256 of build 1 ($tmp/one/rebootctl)"
cat "$tmp/one.sums"
echo "== sha256 of build 2 ($tmp/second-build/src)"
cat "$tmp/two.sums"
echo
[ "$(wc -l < "$tmp/one.sums")" -ge 3 ] || { echo "repro-check: too few artefacts" >&2; exit 1; }
if diff -u "$tmp/one.sums" "$tmp/two.sums"; then
    echo "repro-check: passed: $(wc -l < "$tmp/one.sums") artefacts byte-identical across both builds of $commit"
else
    echo "repro-check: FAILED: the builds differ (see the diff above)" >&2
    exit 1
fi
