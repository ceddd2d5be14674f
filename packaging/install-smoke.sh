#!/bin/sh
# packaging/install-smoke.sh DEB: install DEB into a fresh Debian bookworm
# minbase root (packaging/debian-root.sh) with dpkg -i inside the chroot,
# then run `rebootctl version` and `rebootctl validate-config` on the
# shipped /etc/rebootctl/config.yaml there. Nothing is started: the root has
# a policy-rc.d that exits 101 and a systemctl that only logs its arguments,
# and the log must show no enable/start/restart. Needs root (chroot).
set -eu

deb=${1:?usage: install-smoke.sh DEB}
[ -f "$deb" ] || { echo "install-smoke: $deb not found (make package first)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "install-smoke: needs root (debootstrap, chroot)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
die() { echo "install-smoke: FAIL: $*" >&2; exit 1; }

sh "$here/debian-root.sh" "$root"
cp "$deb" "$root/tmp/rebootctl.deb"
echo "== dpkg -i $(basename "$deb") in a bookworm minbase chroot"
chroot "$root" dpkg -i /tmp/rebootctl.deb
chroot "$root" dpkg -s rebootctl | sed -n 's/^\(Status\|Version\): /  &/p'

echo "== rebootctl version"
chroot "$root" /usr/bin/rebootctl version | tee "$tmp/version"
version=$(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')
grep -q "^rebootctl $version " "$tmp/version" || die "version output does not name $version"

echo "== rebootctl validate-config --config /etc/rebootctl/config.yaml"
chroot "$root" /usr/bin/rebootctl validate-config --config /etc/rebootctl/config.yaml \
    || die "the shipped config does not validate"

echo "== no service started"
if grep -Eq '(^| )(enable|start|restart|try-restart|reload-or-restart|preset)( |$)' "$root/var/log/systemctl-calls"; then
    cat "$root/var/log/systemctl-calls"; die "a maintainer script tried to enable/start the service"
fi
[ ! -s "$root/var/log/policy-rc.d-calls" ] || { cat "$root/var/log/policy-rc.d-calls"; die "invoke-rc.d was asked to start something"; }
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/rebootctl.service" ] || die "the unit got enabled"
echo "  systemctl calls: $(wc -l < "$root/var/log/systemctl-calls"), none of them enable/start/restart"
echo "install-smoke: passed"
