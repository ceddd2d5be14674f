#!/bin/sh
# packaging/upgrade-check.sh A.deb B.deb: the upgrade and removal policy of
# packaging/README.md, checked with dpkg in a fresh Debian bookworm minbase
# chroot (packaging/debian-root.sh). B must be a newer version than A.
#
#   install A; edit /etc/rebootctl/config.yaml; create the kill switch
#   install B over A  -> B installed, edited config and kill switch kept,
#                        no new config copy, the service not started
#   dpkg -r           -> binary gone, config and kill switch kept
#   dpkg -P           -> config.yaml and state dir gone, the kill switch and
#                        /etc/rebootctl stay
#   install A, purge  -> without operator files /etc/rebootctl goes too
#
# /run/systemd/system exists in the root, so the maintainer scripts take
# their "systemd is running" branches; systemctl there only logs its
# arguments and claims the unit is active, policy-rc.d denies everything.
# No start, restart, enable or preset may ever be logged. Needs root.
set -eu

deb_a=${1:?usage: upgrade-check.sh A.deb B.deb}
deb_b=${2:?usage: upgrade-check.sh A.deb B.deb}
[ "$(id -u)" -eq 0 ] || { echo "upgrade-check: needs root (debootstrap, chroot)" >&2; exit 1; }
ver_a=$(dpkg-deb -f "$deb_a" Version)
ver_b=$(dpkg-deb -f "$deb_b" Version)
dpkg --compare-versions "$ver_b" gt "$ver_a" || { echo "upgrade-check: $ver_b is not newer than $ver_a" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
conf=$root/etc/rebootctl/config.yaml
kill=$root/etc/rebootctl/disable

die() { echo "upgrade-check: FAIL: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
pass() { echo "  ok: $*"; }
in_root() { chroot "$root" "$@"; }
# shellcheck disable=SC2016 # dpkg-query fields, not shell variables
installed_version() { in_root dpkg-query -W -f '${Status} ${Version}\n' rebootctl 2>/dev/null || true; }
no_start() {
    if grep -Eq '(^| )(enable|start|restart|try-restart|reload-or-restart|preset)( |$)' "$root/var/log/systemctl-calls"; then
        cat "$root/var/log/systemctl-calls"; die "$1: a maintainer script enabled/started/restarted the service"
    fi
    [ ! -s "$root/var/log/policy-rc.d-calls" ] || { cat "$root/var/log/policy-rc.d-calls"; die "$1: invoke-rc.d was asked to act"; }
    pass "$1: no enable/start/restart (systemctl log: $(tr '\n' ';' < "$root/var/log/systemctl-calls"))"
    : > "$root/var/log/systemctl-calls"
}

sh "$here/debian-root.sh" "$root"
mkdir -p "$root/run/systemd/system"
cp "$deb_a" "$root/tmp/a.deb"
cp "$deb_b" "$root/tmp/b.deb"

step "install A ($ver_a)"
in_root dpkg -i /tmp/a.deb
installed_version | grep -qx "install ok installed $ver_a" || die "A is not installed"
in_root rebootctl validate-config --config /etc/rebootctl/config.yaml >/dev/null
no_start "install"

step "operator edits the config and creates the kill switch"
sed -i 's/^dry_run: true/dry_run: true  # edited by upgrade-check/' "$conf"
grep -q 'edited by upgrade-check' "$conf" || echo '# edited by upgrade-check' >> "$conf"
echo 'maintenance freeze (upgrade-check)' > "$kill"
cp "$conf" "$tmp/conf.edited"
cp "$kill" "$tmp/kill"
in_root rebootctl validate-config --config /etc/rebootctl/config.yaml >/dev/null || die "the edited config does not validate"

step "upgrade to B ($ver_b)"
in_root dpkg -i /tmp/b.deb
installed_version | grep -qx "install ok installed $ver_b" || die "B is not installed"
cmp -s "$conf" "$tmp/conf.edited" || die "the edited config changed on upgrade"
pass "edited config kept"
cmp -s "$kill" "$tmp/kill" || die "the kill switch changed or vanished on upgrade"
pass "kill switch kept"
leftover=$(find "$root/etc/rebootctl" -name '*.dpkg-*')
[ -z "$leftover" ] || die "upgrade left $leftover"
no_start "upgrade"

step "remove (dpkg -r)"
in_root dpkg -r rebootctl
[ ! -e "$root/usr/bin/rebootctl" ] || die "binary still there after remove"
installed_version | grep -q "deinstall ok config-files $ver_b" || die "not in config-files state"
cmp -s "$conf" "$tmp/conf.edited" || die "remove changed the config"
pass "config kept"
cmp -s "$kill" "$tmp/kill" || die "remove touched the kill switch"
pass "kill switch kept"
grep -qx 'stop rebootctl.service' "$root/var/log/systemctl-calls" || die "remove did not stop the service"
pass "service stopped on remove"
no_start "remove"

step "purge (dpkg -P)"
in_root dpkg -P rebootctl
[ ! -e "$conf" ] || die "config.yaml still there after purge"
pass "config.yaml gone"
[ ! -e "$root/var/lib/rebootctl" ] || die "/var/lib/rebootctl still there after purge"
pass "state directory gone"
cmp -s "$kill" "$tmp/kill" || die "purge removed or changed the operator's kill switch"
pass "kill switch left alone (and /etc/rebootctl with it)"
[ -z "$(installed_version)" ] || installed_version | grep -q 'not-installed' || die "package still known to dpkg after purge"
no_start "purge"

step "install A again and purge without operator files"
rm -f "$kill"
in_root dpkg -i /tmp/a.deb >/dev/null
in_root dpkg -P rebootctl >/dev/null
[ ! -e "$root/etc/rebootctl" ] || die "/etc/rebootctl still there after a purge with no operator files"
pass "/etc/rebootctl gone"
no_start "install+purge"

echo
echo "upgrade-check: passed ($ver_a -> $ver_b, remove, purge)"
