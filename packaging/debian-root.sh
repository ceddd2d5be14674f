#!/bin/sh
# packaging/debian-root.sh DEST: unpack a fresh Debian bookworm minbase root
# into DEST (which must not exist or be empty), for the install, upgrade and
# removal checks. The root is built once with debootstrap and cached as a
# tarball in $REBOOTCTL_ROOT_CACHE (/var/cache/rebootctl-debootstrap), so
# every later run only unpacks it (a few seconds) and starts from a clean
# root. The mirror is the one apt on this machine already uses
# (/etc/apt/sources.list*), or $DEBIAN_MIRROR.
#
# The root gets a policy-rc.d that exits 101 (no service may start) and a
# fake systemctl that logs every call to /var/log/systemctl-calls and does
# nothing: the tests read that log to prove the maintainer scripts never
# started anything. Nothing here starts a service on the host or in the root.
set -eu

dest=${1:?usage: debian-root.sh DEST}
suite=${DEBIAN_SUITE:-bookworm}
arch=$(dpkg --print-architecture)
cache=${REBOOTCTL_ROOT_CACHE:-/var/cache/rebootctl-debootstrap}
tarball=$cache/$suite-minbase-$arch.tar.gz

mirror_from_apt() {
    # deb822 (.sources): the first URIs line whose suite list has $suite
    # without a suffix; one-line format: "deb URL $suite ...".
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -e "$f" ] || continue
        awk -v suite="$suite" '
            /^[[:space:]]*$/ { if (uri != "" && ok) { print uri; exit } uri = ""; ok = 0; next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) ok = 1 }
            END { if (uri != "" && ok) print uri }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        awk -v suite="$suite" '$1 == "deb" && $0 !~ /\[/ && $3 == suite { print $2 }
            $1 == "deb" && $2 ~ /^\[/ { for (i = 2; i <= NF; i++) if ($i ~ /\]$/) { if ($(i + 2) == suite) print $(i + 1); break } }' "$f"
    done
}

if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { echo "debian-root: debootstrap not found (apt-get install debootstrap)" >&2; exit 1; }
    mirror=${DEBIAN_MIRROR:-$(mirror_from_apt | head -n 1)}
    [ -n "$mirror" ] || { echo "debian-root: no $suite mirror in /etc/apt/sources.list*; set DEBIAN_MIRROR" >&2; exit 1; }
    mkdir -p "$cache"
    build=$(mktemp -d "$cache/build.XXXXXX")
    trap 'rm -rf "$build"' EXIT
    echo "debian-root: debootstrap --variant=minbase $suite from $mirror (cached in $tarball)" >&2
    debootstrap --variant=minbase --arch="$arch" "$suite" "$build/root" "$mirror" > "$build/log" 2>&1 \
        || { tail -n 30 "$build/log" >&2; exit 1; }
    rm -rf "$build/root/var/cache/apt/archives/"*.deb "$build/root/var/lib/apt/lists/"*
    tar -C "$build/root" --numeric-owner -czf "$build/root.tar.gz" .
    mv "$build/root.tar.gz" "$tarball"
fi

mkdir -p "$dest"
tar -C "$dest" --numeric-owner -xzf "$tarball"

# No service may start inside the root (invoke-rc.d, deb-systemd-invoke).
printf '#!/bin/sh\necho "policy-rc.d: denied $*" >> /var/log/policy-rc.d-calls\nexit 101\n' \
    > "$dest/usr/sbin/policy-rc.d"
chmod 0755 "$dest/usr/sbin/policy-rc.d"
# A systemctl that records its arguments and does nothing. minbase has no
# systemd, so this is the only systemctl in the root.
printf '#!/bin/sh\necho "$*" >> /var/log/systemctl-calls\nexit 0\n' > "$dest/usr/bin/systemctl"
chmod 0755 "$dest/usr/bin/systemctl"
: > "$dest/var/log/systemctl-calls"
: > "$dest/var/log/policy-rc.d-calls"
