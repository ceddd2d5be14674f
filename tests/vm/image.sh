#!/usr/bin/env bash
# tests/vm/image.sh OUT.img: the base disk image of the vm-test guests.
#
# debootstrap --variant=minbase bookworm plus systemd-sysv, udev, kmod,
# iproute2, openssh-server, ca-certificates, curl, zstd and the OLDER kernel
# ($VM_KERNEL_OLD, default linux-image-cloud-amd64 as bookworm's main suite
# has it), turned into a raw ext4 image with `mke2fs -d` (no loop mount).
# The root gets systemd-networkd, a persistent journal, the test's health
# script and no host identity: /etc/machine-id is empty and the ssh host keys
# are removed, vm-test.sh writes both per VM. rebootctl is NOT in this image:
# vm-test.sh installs the .deb in each running VM with dpkg -i, as an
# operator does, so the image does not change when the code does.
#
# Also writes OUT.img.kernel (the kernel release inside). Needs root,
# debootstrap, mke2fs; about 2 minutes on 2 cores.
set -euo pipefail

out=${1:?usage: image.sh OUT.img}
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm
kernel_pkg=${VM_KERNEL_OLD:-linux-image-cloud-amd64}
# shellcheck disable=SC2016 # apt's format placeholders, not shell
mirror=${DEBIAN_MIRROR:-$(apt-get indextargets --format '$(RELEASE) $(IDENTIFIER) $(REPO_URI)' \
    | awk -v s="$suite" '$1 == s && $2 == "Packages" { print $3; exit }')}
mirror=${mirror:-http://deb.debian.org/debian/}

work=$(mktemp -d "$(dirname "$out")/image.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

echo "image: debootstrap --variant=minbase $suite from $mirror with $kernel_pkg"
debootstrap --variant=minbase \
    --include="systemd-sysv,udev,kmod,iproute2,openssh-server,ca-certificates,curl,zstd,$kernel_pkg" \
    "$suite" "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

kernel=$(find "$root/boot" -name 'vmlinuz-*' -printf '%f\n' | sed 's/^vmlinuz-//' | sort -V | tail -n 1)
if [ -z "$kernel" ] || [ ! -e "$root/boot/initrd.img-$kernel" ]; then
    echo "image: no kernel/initrd in the root" >&2
    exit 1
fi

# No identity: vm-test.sh writes machine-id, host keys, hostname, address.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root"/etc/ssh/ssh_host_*
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\nUseDNS no\n' \
    > "$root/etc/ssh/sshd_config.d/vmtest.conf"
install -d -m 0700 "$root/root/.ssh"
echo vm > "$root/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$root/etc/fstab"

# Network: systemd-networkd, so network-online.target means "address up".
chroot "$root" systemctl enable systemd-networkd.service systemd-networkd-wait-online.service >/dev/null 2>&1
# Quiet guests: no timers that would run apt or fstrim in the middle of a test.
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer fstrim.timer e2scrub_reap.service getty@tty1.service >/dev/null 2>&1
# Initramfs images of kernels installed later (in the VM) hold only the
# modules this virtual hardware needs: with the default MODULES=most the
# update-initramfs of `dpkg -i linux-image-…` takes about 3 minutes under
# TCG, with MODULES=dep under 1. The image's own initrd, built in the chroot
# above, keeps MODULES=most (dep would look at the host's hardware).
printf 'MODULES=dep\n' > "$root/etc/initramfs-tools/conf.d/vmtest"
# The journal survives reboots and reaches the disk within a second: the
# boot logs are part of the evidence, also of a boot that lost its power.
install -d "$root/var/log/journal" "$root/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\nSyncIntervalSec=1s\n' > "$root/etc/systemd/journald.conf.d/vmtest.conf"

install -D -m 0755 "$here/guest/health-check" "$root/usr/local/lib/rebootctl/health-check"
install -d "$root/etc/vmtest"

rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
mke2fs -q -t ext4 -L vmroot -d "$root" -F "$work/disk.img" 2G
echo "$kernel" > "$work/kernel"
mv "$work/disk.img" "$out"
mv "$work/kernel" "$out.kernel"
echo "image: $out (kernel $kernel, $(du -h --apparent-size "$out" | cut -f1) sparse, $(du -h "$out" | cut -f1) used)"
