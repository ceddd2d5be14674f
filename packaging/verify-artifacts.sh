#!/bin/sh
# packaging/verify-artifacts.sh DIST_DIR PUBKEY: check a release directory
# against the release public key (an armoured or binary OpenPGP key file).
#
#   1. SHA256SUMS.asc is a good signature of SHA256SUMS by PUBKEY (gpg, in a
#      temporary GNUPGHOME that holds only PUBKEY);
#   2. every file SHA256SUMS lists has that checksum, and every .deb, .rpm
#      and .cdx.json in DIST_DIR is listed;
#   3. every .rpm carries a good signature by PUBKEY (rpm -K against a
#      temporary rpm database, --dbpath, into which PUBKEY is imported);
#   4. every .deb carries a good debsigs "origin" signature by PUBKEY
#      (debsig-verify with a policy and keyring in a temporary directory).
#
# Every check runs; each failure is reported; the exit status is 1 when any
# failed. Needs gpg, sha256sum, rpm and debsig-verify.
set -u

dist=${1:?usage: verify-artifacts.sh DIST_DIR PUBKEY}
pubkey=${2:?usage: verify-artifacts.sh DIST_DIR PUBKEY}
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
ok() { echo "ok: $*"; }

for tool in gpg sha256sum rpm debsig-verify; do
    command -v "$tool" >/dev/null || { echo "verify-artifacts: $tool not found" >&2; exit 2; }
done
[ -d "$dist" ] || { echo "verify-artifacts: $dist is not a directory" >&2; exit 2; }
[ -r "$pubkey" ] || { echo "verify-artifacts: cannot read $pubkey" >&2; exit 2; }
dist=$(cd "$dist" && pwd)

tmp=$(mktemp -d)
trap 'gpgconf --homedir "$tmp/gnupg" --kill all >/dev/null 2>&1; rm -rf "$tmp"' EXIT
mkdir -m 700 "$tmp/gnupg"
export GNUPGHOME="$tmp/gnupg"
gpg --batch --quiet --import "$pubkey" 2>/dev/null || { echo "verify-artifacts: $pubkey is not an OpenPGP key" >&2; exit 2; }
fpr=$(gpg --batch --with-colons --fingerprint | awk -F: '$1 == "fpr" { print $10; exit }')
[ -n "$fpr" ] || { echo "verify-artifacts: no key in $pubkey" >&2; exit 2; }
keyid16=$(printf '%s' "$fpr" | tail -c 16)
echo "verify-artifacts: $dist against key $fpr"

# 1. The checksums file and its signature.
if [ ! -f "$dist/SHA256SUMS" ]; then
    fail "SHA256SUMS missing"
elif [ ! -f "$dist/SHA256SUMS.asc" ]; then
    fail "SHA256SUMS.asc missing"
elif gpg --batch --status-fd 3 --verify "$dist/SHA256SUMS.asc" "$dist/SHA256SUMS" 3>"$tmp/status" 2>"$tmp/gpg.err" \
        && grep -q "^\[GNUPG:\] VALIDSIG $fpr " "$tmp/status"; then
    ok "SHA256SUMS.asc: good signature by $fpr"
else
    cat "$tmp/gpg.err" >&2
    fail "SHA256SUMS.asc: not a good signature of SHA256SUMS by $fpr"
fi

# 2. Checksums, and nothing shipped that is not summed.
if [ -f "$dist/SHA256SUMS" ]; then
    if (cd "$dist" && sha256sum --strict --check SHA256SUMS) > "$tmp/sums" 2>&1; then
        ok "SHA256SUMS: $(wc -l < "$dist/SHA256SUMS") files match"
    else
        grep -v ': OK$' "$tmp/sums" >&2
        fail "SHA256SUMS: checksum mismatch"
    fi
    for f in "$dist"/*.deb "$dist"/*.rpm "$dist"/*.cdx.json; do
        [ -e "$f" ] || continue
        b=$(basename "$f")
        awk -v b="$b" '{ sub(/^\*/, "", $2) } $2 == b { found = 1 } END { exit !found }' "$dist/SHA256SUMS" \
            || fail "$b: not listed in SHA256SUMS"
    done
fi

# 3. rpm signatures, against a database that holds only PUBKEY.
rpms=$(find "$dist" -maxdepth 1 -name '*.rpm' | sort)
if [ -n "$rpms" ]; then
    mkdir "$tmp/rpmdb"
    rpm --dbpath "$tmp/rpmdb" --initdb
    rpm --dbpath "$tmp/rpmdb" --import "$pubkey" || { echo "verify-artifacts: rpm cannot import $pubkey" >&2; exit 2; }
    for f in $rpms; do
        # rpm -K exits 0 for an unsigned package whose digests are fine, so
        # the output must say the signatures are OK as well.
        if out=$(rpm --dbpath "$tmp/rpmdb" -K "$f" 2>&1) \
                && printf '%s\n' "$out" | grep -q 'signatures OK$' \
                && ! printf '%s\n' "$out" | grep -q 'NOT OK'; then
            ok "$(basename "$f"): rpm -K: $out" | sed "s|$dist/||"
        else
            fail "$(basename "$f"): rpm -K: $out"
        fi
    done
fi

# 4. debsigs origin signatures, with a debsig-verify policy for PUBKEY only.
debs=$(find "$dist" -maxdepth 1 -name '*.deb' | sort)
if [ -n "$debs" ]; then
    mkdir -p "$tmp/debsig/policies/$keyid16" "$tmp/debsig/keyrings/$keyid16"
    gpg --batch --export "$fpr" > "$tmp/debsig/keyrings/$keyid16/debsig.gpg"
    cat > "$tmp/debsig/policies/$keyid16/rebootctl.pol" <<POL
<?xml version="1.0"?>
<!DOCTYPE Policy SYSTEM "https://www.debian.org/debsig/1.0/policy.dtd">
<Policy xmlns="https://www.debian.org/debsig/1.0/">
  <Origin Name="rebootctl" id="$keyid16" Description="rebootctl release key"/>
  <Selection>
    <Required Type="origin" File="debsig.gpg" id="$keyid16"/>
  </Selection>
  <Verification MinOptional="0">
    <Required Type="origin" File="debsig.gpg" id="$keyid16"/>
  </Verification>
</Policy>
POL
    for f in $debs; do
        if out=$(debsig-verify --policies-dir "$tmp/debsig/policies" --keyrings-dir "$tmp/debsig/keyrings" "$f" 2>&1); then
            ok "$(basename "$f"): debsig-verify: $(printf '%s' "$out" | tail -n 1)"
        else
            fail "$(basename "$f"): debsig-verify: $(printf '%s' "$out" | tr '\n' ' ')"
        fi
    done
fi

if [ "$failed" -ne 0 ]; then
    echo "verify-artifacts: FAILED" >&2
    exit 1
fi
echo "verify-artifacts: all checksums and signatures good"
