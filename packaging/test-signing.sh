#!/bin/sh
# packaging/test-signing.sh: the signing and verification round trip.
#
# Makes a throwaway GPG key (batch, no passphrase, in a temporary GNUPGHOME),
# runs `make package SIGN_KEY_ID=...` into a temporary dist directory, checks
# that packaging/verify-artifacts.sh accepts the result, then flips one byte
# in the .deb and, separately, in the .rpm and checks that verification
# fails, and finally that it fails against a different key. Run from the
# repository root (make test-signing). ARCH defaults to amd64 (one build).
set -eu

arch=${ARCH:-amd64}
make=${MAKE:-make}
tmp=$(mktemp -d)
cleanup() {
    gpgconf --homedir "$tmp/gnupg" --kill all >/dev/null 2>&1 || true
    gpgconf --homedir "$tmp/other" --kill all >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -m 700 "$tmp/gnupg" "$tmp/other"
export GNUPGHOME="$tmp/gnupg"

step() { printf '\n== %s\n' "$*"; }
die() { echo "test-signing: FAIL: $*" >&2; exit 1; }

step "throwaway key"
gpg --batch --quiet --passphrase '' --quick-generate-key \
    'rebootctl test signing <test-signing@rebootctl.invalid>' rsa3072 sign 1d
fpr=$(gpg --batch --with-colons --list-secret-keys | awk -F: '$1 == "fpr" { print $10; exit }')
gpg --batch --armor --export "$fpr" > "$tmp/release-key.asc"
echo "key $fpr"

step "make package ARCH=$arch SIGN_KEY_ID=$fpr"
"$make" --no-print-directory package ARCH="$arch" SIGN_KEY_ID="$fpr" PKG_DIST="$tmp/dist" > "$tmp/package.log" 2>&1 \
    || { tail -n 40 "$tmp/package.log" >&2; die "make package with signing failed"; }
rm -rf "$tmp/dist/stage-$arch"
ls "$tmp/dist"
deb=$(find "$tmp/dist" -name '*.deb' | head -n 1)
rpm=$(find "$tmp/dist" -name '*.rpm' | head -n 1)
if [ -z "$deb" ] || [ -z "$rpm" ]; then die "no .deb or .rpm built"; fi
ar t "$deb" | grep -qx _gpgorigin || die "$deb has no _gpgorigin member"

step "verify: untouched artefacts pass"
sh packaging/verify-artifacts.sh "$tmp/dist" "$tmp/release-key.asc" || die "verification of good artefacts failed"

# flip FILE: invert the byte in the middle of FILE (inside the payload).
flip() {
    size=$(stat -c %s "$1")
    off=$((size / 2))
    byte=$(od -An -tu1 -j "$off" -N1 "$1" | tr -d ' ')
    printf '%b' "\\0$(printf '%03o' $((255 - byte)))" | dd of="$1" bs=1 seek="$off" count=1 conv=notrunc 2>/dev/null
    echo "flipped byte $off of $(basename "$1") ($byte -> $((255 - byte)))"
}

for f in "$deb" "$rpm"; do
    step "verify: one flipped byte in $(basename "$f") fails"
    cp "$f" "$tmp/saved"
    flip "$f"
    if sh packaging/verify-artifacts.sh "$tmp/dist" "$tmp/release-key.asc" > "$tmp/out" 2>&1; then
        cat "$tmp/out"; die "verification passed with a flipped byte in $f"
    fi
    grep FAIL "$tmp/out"
    grep -q "$(basename "$f"): FAILED" "$tmp/out" || die "checksum mismatch of $(basename "$f") not reported"
    grep -q "FAIL: $(basename "$f"): \(rpm -K\|debsig-verify\)" "$tmp/out" \
        || die "the package signature check of $(basename "$f") did not fail"
    cp "$tmp/saved" "$f"
done

step "verify: a different key fails"
GNUPGHOME="$tmp/other" gpg --batch --quiet --passphrase '' --quick-generate-key \
    'someone else <other@rebootctl.invalid>' rsa3072 sign 1d
GNUPGHOME="$tmp/other" gpg --batch --armor --export > "$tmp/other-key.asc"
if sh packaging/verify-artifacts.sh "$tmp/dist" "$tmp/other-key.asc" > "$tmp/out" 2>&1; then
    cat "$tmp/out"; die "verification passed against the wrong key"
fi
grep FAIL "$tmp/out"

step "verify: restored artefacts pass again"
sh packaging/verify-artifacts.sh "$tmp/dist" "$tmp/release-key.asc" > /dev/null || die "restored artefacts do not verify"
echo
echo "test-signing: passed (signed, verified, tampering and a wrong key detected)"
