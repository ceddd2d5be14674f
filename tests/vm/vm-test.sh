#!/usr/bin/env bash
# tests/vm/vm-test.sh DEB: rebootctl on real (virtual) hosts (`make vm-test`).
#
# Three Debian bookworm VMs under qemu (vm3 with 256 MiB), a network
# namespace with a bridge, one tap per VM and etcd on the bridge address.
# rebootctl is installed from DEB with dpkg -i in each running VM, configured
# over ssh and started with systemctl, and reboots the guests for real with
# its default reboot command. This script is the VMs' boot loader: qemu runs
# with -no-reboot, and every guest reset starts the newest kernel installed in
# that VM's disk, so a kernel upgrade changes the running kernel.
#
# Scenarios (tests/vm/README.md): rolling kernel upgrade, power loss of the
# holder in phase rebooting, a VM that never returns, kill switch and
# `systemctl stop` under the lock (and boot without etcd), the 256 MiB VM's
# agent RSS and slot time. Then the invariants: from etcd's history (every
# revision since the start) and from the VMs' boot logs (journal), never
# more than one VM between "reboot started" and "back and healthy", and no
# slot released before its VM was back and healthy.
#
# Prints a timeline; on failure the serial console and the agent journal of
# every VM. Always cleans up (qemu, etcd, the namespace), also on failure
# and interruption. Needs root, qemu-system-x86, debootstrap, e2fsprogs,
# iproute2, etcd-server, etcd-client, openssh-client, jq, apt-get.
#
# Environment: VM_DIR (target/vm: cache and run directory), VM_FRESH=1
# (rebuild the image and download the kernel again), VM_ACCEL (kvm|tcg: skip
# the probe), VM_KERNEL_OLD / VM_KERNEL_NEW (Debian kernel package names),
# VM_KEEP_DISKS=1 (keep the disks of the last run).
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
deb=$(realpath "${1:?usage: vm-test.sh DEB}")
vmdir=$(realpath -m "${VM_DIR:-$repo/target/vm}")
run=$vmdir/run
ns=rcvm-$$
VMS=(1 2 3)
declare -A MEM=([1]=512 [2]=512 [3]=256)
SMALL=3                     # the 256 MiB VM
REBOOT_TIMEOUT_SEC=300      # normal VMs: a TCG reboot takes well under a minute
LOST_REBOOT_TIMEOUT_SEC=60  # the VM that never returns
SLOTS=1

# shellcheck source=tests/vm/lib.sh
. "$here/lib.sh"

# --- bookkeeping -----------------------------------------------------------------

stage_name="" stage_start=0
STAGES=()
stage() {
    [ -z "$stage_name" ] || STAGES+=("$(printf '%-34s %6ss' "$stage_name" "$(secs_since "$stage_start")")")
    stage_name=$1
    stage_start=$(now_us)
    [ "$1" = end ] || { echo; tl "==" "$1"; }
}

note() { tl "test" "$*"; }

# check WHAT CMD...: an assertion, logged.
check() {
    local what=$1
    shift
    "$@" > /dev/null || fail "check failed: $what"
    tl "ok" "$what"
}

LOST=()            # VMs whose reboot is expected to never complete
lost_json() { printf '%s\n' "${LOST[@]}" | jq -R 'select(length > 0)' | jq -sc .; }

# etcd_invariants: invariants.jq over etcd's whole history so far, into
# $run/invariants.json; fails on a violation. Run after every scenario.
etcd_invariants() {
    local end last
    end=$(etcd_revision)
    etcd_history "$end" > "$run/history.jsonl"
    last=$(tail -n 1 "$run/history.jsonl" | jq '.Header.revision')
    [ "$last" -ge "$end" ] || fail "etcd history incomplete: read up to revision $last of $end"
    jq -s --argjson slots "$SLOTS" --argjson lost "$(lost_json)" -f "$here/invariants.jq" \
        "$run/history.jsonl" > "$run/invariants.json"
    jq -r '.violations[] | "    VIOLATION: \(.)"' "$run/invariants.json"
    check "etcd history, revisions 1..$end: at most $SLOTS VM down at once (max $(jq .max_down "$run/invariants.json")), no slot released before its VM was back and healthy" \
        jq -e '.violations == []' "$run/invariants.json"
}
DIAGNOSED=""

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    [ "$rc" -eq 0 ] || diagnostics
    observer_stop
    vms_stop
    etcd_stop
    ip netns del "$ns" 2>/dev/null
    # Prove it: nothing of this run is left.
    local left=""
    for n in "${VMS[@]}"; do
        [ ! -s "$run/vm$n/qemu.pid" ] || left+=" qemu(vm$n)"
    done
    [ ! -s "$run/etcd/pid" ] || left+=" etcd"
    ! ip netns list | grep -qw "$ns" || left+=" namespace $ns"
    [ -z "$left" ] || echo "vm-test: LEFT BEHIND:$left" >&2
    [ -n "${VM_KEEP_DISKS:-}" ] || rm -f "$run"/vm*/disk.img "$run"/vm*/vmlinuz "$run"/vm*/initrd
    stage end
    echo
    echo "stages (wall clock):"
    printf '  %s\n' "${STAGES[@]}"
    echo "  total                              $(secs_since "$START_US")s"
    if [ "$rc" -eq 0 ]; then
        echo "vm-test: passed (logs in $run)"
    else
        echo "vm-test: FAILED (exit $rc; logs, consoles and journals in $run)"
    fi
    exit "$rc"
}

# On failure: the serial console and the agent journal of every VM.
diagnostics() {
    [ -z "$DIAGNOSED" ] || return 0
    DIAGNOSED=1
    local n
    echo
    echo "===== diagnostics ====="
    for n in "${VMS[@]}"; do
        [ -d "$run/vm$n" ] || continue
        if vm_running "$n" && VSSH_TIMEOUT=20 vssh "$n" \
            'journalctl -u rebootctl -o short-precise --no-pager' > "$run/vm$n/journal-rebootctl.txt" 2>&1; then
            :
        else
            echo "(vm$n: no ssh, journal read from its disk below)" > "$run/vm$n/journal-rebootctl.txt"
        fi
    done
    vms_stop
    for n in "${VMS[@]}"; do
        [ -d "$run/vm$n" ] || continue
        if grep -q '^(vm.*from its disk' "$run/vm$n/journal-rebootctl.txt" 2>/dev/null; then
            disk_journal "$n" -u rebootctl -o short-precise >> "$run/vm$n/journal-rebootctl.txt" 2>&1
        fi
        echo
        echo "----- vm$n: serial console (last 150 lines of $run/vm$n/console.log) -----"
        tail -n 150 "$run/vm$n/console.log" 2>/dev/null
        echo
        echo "----- vm$n: journalctl -u rebootctl (last 150 lines of $run/vm$n/journal-rebootctl.txt) -----"
        tail -n 150 "$run/vm$n/journal-rebootctl.txt"
    done
    echo
    echo "----- etcd log: warnings and errors (last 20; all in $run/etcd/log) -----"
    grep -E ' [WEC] \| ' "$run/etcd/log" 2> /dev/null | tail -n 20
}

# disk_journal N ARGS...: journalctl ARGS over the journal files in VM N's
# disk (the VM must be off); they stay in $run/vmN/journal-files/journal.
disk_journal() {
    local n=$1 d=$run/vm$1
    shift
    rm -rf "$d/journal-files"
    mkdir -p "$d/journal-files"
    debugfs -R "rdump /var/log/journal $d/journal-files" "$d/disk.img" > /dev/null 2>&1
    journalctl -D "$d/journal-files/journal" --no-pager "$@"
}

# vm_journal N SCRIPT: run the shell SCRIPT with $JC set to a journalctl
# command for VM N: in the VM over ssh while it runs, else on the host over
# the journal files in its disk.
vm_journal() {
    if vm_running "$1"; then
        vssh "$1" "JC='journalctl --no-pager'; $2"
    else
        disk_journal "$1" -n 0 > /dev/null
        JC="journalctl --no-pager -D $run/vm$1/journal-files/journal" bash -c "$2"
    fi
}

# --- the guests ----------------------------------------------------------------------

# vm_config N [REBOOT_TIMEOUT]: the configuration an operator would write.
vm_config() {
    cat <<EOF
# vm-test: cluster mode on the test namespace's etcd. reboot_command is not
# set: the packaged default runs, and in these VMs it really reboots.
node_name: vm$1
reboot_required_detectors:
  - name: reboot-required
    type: file
    path: /var/run/reboot-required
  - name: kernel
    type: kernel
health_script: /usr/local/lib/rebootctl/health-check
health_timeout_sec: 40
health_publish_interval_sec: 5
check_interval_sec: 5
backoff_min_sec: 1
backoff_max_sec: 10
reboot_timeout_sec: ${2:-$REBOOT_TIMEOUT_SEC}
etcd_endpoints: ["$ETCD_URL"]
lock_ttl_sec: 60
max_concurrent_reboots: $SLOTS
log_format: json
dry_run: false
EOF
}

declare -A BOOT KERNEL
# vm_up N [OLD_BOOT_ID] [TIMEOUT]: wait until VM N answers on ssh in a boot
# other than OLD_BOOT_ID; records its boot id, kernel and clock offset.
vm_up() {
    local n=$1 old=${2:-} limit=${3:-240} b
    wait_for "$limit" "vm$n up (ssh) in a new boot" new_boot "$n" "$old"
    b=$(vm_boot_id "$n")
    BOOT[$n]=$b
    KERNEL[$n]=$(vssh "$n" uname -r)
    local up off
    up=$(vssh "$n" "cut -d' ' -f1 /proc/uptime")
    off=$(clock_offset "$n")
    echo "$n $b $off" >> "$run/offsets"
    tl "vm$n" "up: ssh answers, kernel ${KERNEL[$n]} (uname -r), boot ${b:0:8}, uptime ${up}s, clock offset ${off} us"
}

new_boot() {
    local b
    b=$(vm_boot_id "$1") && [ -n "$b" ] && [ "$b" != "$2" ]
}

# clock_offset N: guest clock minus host clock in microseconds, from the
# fastest of five round trips over one ssh session.
clock_offset() {
    local best=-1 off=0 t1 t2 g to from
    coproc CLK { vssh "$1" 'while read -r _; do date +%s%6N; done'; }
    to=${CLK[1]} from=${CLK[0]}
    for _ in 1 2 3 4 5; do
        t1=${EPOCHREALTIME/./}
        echo ping >&"$to"
        read -r g <&"$from" || break
        t2=${EPOCHREALTIME/./}
        if ((best < 0 || t2 - t1 < best)); then
            best=$((t2 - t1))
            off=$((g - (t1 + t2) / 2))
        fi
    done
    exec {to}>&-
    wait "$CLK_PID" 2> /dev/null || true
    echo "$off"
}

# The slot held by node $1 as "key phase boot_id", empty when none.
slot_of() {
    ectl get --prefix /rebootctl/lock/ -w json | jq -r --arg n "$1" '
        .kvs[]? | (.key | @base64d) as $k | select($k | test("/slot-[0-9]+$"))
        | (.value | @base64d | fromjson? // {}) as $v | select($v.node == $n)
        | "\($k) \($v.phase) \($v.boot_id)"'
}
holds_phase() { [ "$(slot_of "$1" | cut -d' ' -f2)" = "$2" ]; }
holds_none() { [ -z "$(slot_of "$1")" ]; }
lock_free() { [ -z "$(ectl get --prefix /rebootctl/lock/slot- --keys-only)" ]; }
# Any slot in phase rebooting: its node.
rebooting_node() {
    ectl get --prefix /rebootctl/lock/ -w json | jq -r '
        .kvs[]? | select(.key | @base64d | test("/slot-[0-9]+$"))
        | (.value | @base64d | fromjson? // {}) | select(.phase == "rebooting") | .node'
}
# History entries EVENT of node N.
history_count() {
    ectl get --prefix /rebootctl/history/ --print-value-only \
        | jq -s --arg n "$1" --arg e "$2" '[.[] | select(.node == $n and .event == $e)] | length'
}
completed_more_than() { (($(history_count "$1" reboot_completed) > $2)); }
health_rev() { ectl get "/rebootctl/health/$1" -w json | jq '.kvs[0].mod_revision // 0'; }
health_newer_than() { (($(health_rev "$1") > $2)); }
registered() { [ "$(ectl get --prefix /rebootctl/nodes/ --keys-only | grep -c .)" -eq "${#VMS[@]}" ]; }

# status_exit N: the exit code of `rebootctl status` on VM N (its output in
# $run/vmN/status.txt).
status_exit() {
    local rc=0
    vssh "$1" 'rebootctl status' > "$run/vm$1/status.txt" 2>&1 || rc=$?
    echo "$rc"
}

status_is() { [ "$(status_exit "$1")" = "$2" ]; }

# The unit started after network-online.target in the current boot.
started_after_network() {
    local net unit
    net=$(vssh "$1" systemctl show -P ActiveEnterTimestampMonotonic network-online.target)
    unit=$(vssh "$1" systemctl show -P ExecMainStartTimestampMonotonic rebootctl.service)
    [ "$net" -gt 0 ] && [ "$unit" -ge "$net" ]
}

kernel_required() {
    vssh "$1" 'rebootctl simulate --json' | jq -e '.detectors[] | select(.type == "kernel") | .verdict == "required"' > /dev/null
}

agent_rss() {
    # shellcheck disable=SC2016 # expanded in the guest
    vssh "$1" 'pid=$(systemctl show -P MainPID rebootctl); grep -E "^(VmRSS|VmHWM|RssAnon|RssFile):" /proc/$pid/status; grep -E "^(MemTotal|MemAvailable):" /proc/meminfo'
}

# --- stages ------------------------------------------------------------------------

START_US=$(now_us)
T0_US=$START_US
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$run"
mkdir -p "$run"
: > "$run/timeline"
echo "vm-test: rebootctl on real (virtual) hosts; run directory $run"

stage "preflight"
[ "$(id -u)" -eq 0 ] || fail "needs root (network namespace, debootstrap, tap devices)"
for c in "$QEMU_BIN" debootstrap debugfs mke2fs ip "$ETCD_BIN" "$ETCDCTL_BIN" ssh scp ssh-keygen jq apt-get journalctl; do
    command -v "$c" > /dev/null || fail "missing command: $c (see tests/vm/README.md)"
done
[ -c /dev/net/tun ] || fail "no /dev/net/tun"
[ -f "$deb" ] || fail "no package $deb (make package)"
note "package $(basename "$deb"), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

stage "image"
key=$( (cat "$here/image.sh" "$here"/guest/*; echo "${VM_KERNEL_OLD:-}") | sha256sum | cut -c1-16)
base_img=$vmdir/base-$key.img
if [ -n "${VM_FRESH:-}" ] || [ ! -s "$base_img" ]; then
    rm -f "$vmdir"/base-*.img "$vmdir"/base-*.img.kernel
    mkdir -p "$vmdir"
    bash "$here/image.sh" "$base_img"
else
    note "cached image $base_img"
fi
OLD_KERNEL=$(cat "$base_img.kernel")

stage "newer kernel"
new_pkg=${VM_KERNEL_NEW:-$(apt-cache depends linux-image-cloud-amd64 2> /dev/null | awk '/Depends: linux-image-/ { print $2; exit }')}
[ -n "$new_pkg" ] || fail "no newer kernel package known to apt (apt-get update; or set VM_KERNEL_NEW)"
NEW_KERNEL=${new_pkg#linux-image-}
if [ "$NEW_KERNEL" = "$OLD_KERNEL" ] \
    || [ "$(printf '%s\n%s\n' "$OLD_KERNEL" "$NEW_KERNEL" | sort -V | tail -n 1)" != "$NEW_KERNEL" ]; then
    fail "$new_pkg is not newer than the image's $OLD_KERNEL (set VM_KERNEL_NEW)"
fi
mkdir -p "$vmdir/kernels"
[ -z "${VM_FRESH:-}" ] || rm -f "$vmdir"/kernels/*.deb
kernel_deb=$(find "$vmdir/kernels" -name "${new_pkg}_*.deb" | head -n 1)
if [ -z "$kernel_deb" ]; then
    # apt warns that it downloads as root into a directory _apt cannot write.
    (cd "$vmdir/kernels" && apt-get download -q "$new_pkg" 2>&1) | grep -v '^W: Download is performed unsandboxed' || true
    kernel_deb=$(find "$vmdir/kernels" -name "${new_pkg}_*.deb" | head -n 1)
    [ -n "$kernel_deb" ] || fail "apt-get download $new_pkg failed"
fi
note "image kernel $OLD_KERNEL; upgrade to $NEW_KERNEL ($(basename "$kernel_deb"))"

stage "accelerator"
accel=${VM_ACCEL:-}
if [ -z "$accel" ]; then
    accel=tcg
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        # A kernel without a root file system prints its banner and panics;
        # panic=-1 and -no-reboot end qemu. KVM passes if that takes < 15 s.
        debugfs -R "dump /boot/vmlinuz-$OLD_KERNEL $run/probe-vmlinuz" "$base_img" > /dev/null 2>&1
        t=$(now_us)
        if timeout 15 "$QEMU_BIN" -machine accel=kvm -m 256 -nodefaults -no-user-config -display none \
            -no-reboot -kernel "$run/probe-vmlinuz" -append "console=ttyS0 panic=-1" -serial stdio \
            2>&1 | grep -q 'Kernel panic'; then
            accel=kvm
        fi
        note "KVM probe: $([ "$accel" = kvm ] && echo "usable" || echo "no panic within 15 s, unusable") ($(secs_since "$t")s)"
        rm -f "$run/probe-vmlinuz"
    else
        note "no usable /dev/kvm"
    fi
fi
note "qemu accel=$accel"

stage "network and etcd"
ssh-keygen -q -t ed25519 -N '' -C vm-test -f "$run/id_ed25519"
: > "$run/known_hosts"
net_up
etcd_start
observer_start 1
note "namespace $ns: br0 $BR_IP/24, taps ${VMS[*]/#/tap}, etcd $($ETCD_BIN --version | sed -n 's/^etcd Version: //p') on $ETCD_URL"

stage "boot"
for n in "${VMS[@]}"; do
    vm_disk "$n"
done
for n in "${VMS[@]}"; do
    vm_start "$n" "${MEM[$n]}"
done
for n in "${VMS[@]}"; do
    vm_up "$n" "" 300
done
for n in "${VMS[@]}"; do
    check "vm$n runs the image's kernel $OLD_KERNEL" [ "${KERNEL[$n]}" = "$OLD_KERNEL" ]
done

stage "install rebootctl (dpkg -i)"
install_one() {
    local n=$1 d=$run/vm$1
    vscp "$n" "$deb" /root/rebootctl.deb
    VSSH_TIMEOUT=300 vssh "$n" 'dpkg -i /root/rebootctl.deb' > "$d/dpkg-rebootctl.log" 2>&1 \
        || { cat "$d/dpkg-rebootctl.log"; fail "vm$n: dpkg -i failed"; }
    # The package never enables or starts the service (packaging/README.md).
    [ "$(vssh "$n" 'systemctl is-enabled rebootctl || true')" = disabled ] || fail "vm$n: the package enabled the unit"
    [ "$(vssh "$n" 'systemctl is-active rebootctl || true')" = inactive ] || fail "vm$n: the package started the unit"
    vm_config "$n" | vssh "$n" 'cat > /etc/rebootctl/config.yaml'
    vssh "$n" 'rebootctl validate-config' > "$d/validate.txt" 2>&1 \
        || { cat "$d/validate.txt"; fail "vm$n: validate-config"; }
    vssh "$n" 'systemctl enable --now rebootctl' > /dev/null 2>&1
}
pids=()
for n in "${VMS[@]}"; do
    install_one "$n" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "installing rebootctl failed (above)"; done
check "dpkg -i installed rebootctl in every VM without enabling or starting it; configured, enabled, started" true
wait_for 60 "all nodes registered in etcd" registered
for n in "${VMS[@]}"; do
    check "vm$n: rebootctl.service active" [ "$(vssh "$n" systemctl is-active rebootctl)" = active ]
    check "vm$n: the unit started after network-online.target" started_after_network "$n"
done
wait_for 90 "vm1's rebootctl status: nothing to do (exit 0)" status_is 1 0
vssh 1 'rebootctl nodes' | sed 's/^/    /'

# --- scenario 1 -----------------------------------------------------------------------
stage "scenario 1: rolling kernel upgrade"
note "installing $NEW_KERNEL with dpkg -i in every VM, under the kill switch (why: tests/vm/README.md)"
upgrade_one() {
    local n=$1 d=$run/vm$1 t
    vssh "$n" 'touch /etc/rebootctl/disable'
    vscp "$n" "$kernel_deb" /root/
    t=$(now_us)
    VSSH_TIMEOUT=900 vssh "$n" "dpkg -i /root/$(basename "$kernel_deb")" > "$d/dpkg-kernel.log" 2>&1 \
        || { cat "$d/dpkg-kernel.log"; fail "vm$n: dpkg -i of the kernel failed"; }
    tl "vm$n" "dpkg -i $(basename "$kernel_deb") done in $(secs_since "$t")s"
}
declare -A BEFORE
for n in "${VMS[@]}"; do BEFORE[$n]=${BOOT[$n]}; done
pids=()
for n in "${VMS[@]}"; do
    upgrade_one "$n" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || fail "kernel upgrade failed (above)"; done
for n in "${VMS[@]}"; do
    check "vm$n: kernel detector says required ($NEW_KERNEL installed, $OLD_KERNEL running)" kernel_required "$n"
    check "vm$n: rebootctl status blocked by the kill switch (exit 5)" [ "$(status_exit "$n")" = 5 ]
done
note "removing the kill switch on every VM"
for n in "${VMS[@]}"; do vssh "$n" 'rm /etc/rebootctl/disable'; done
for n in "${VMS[@]}"; do
    wait_for 600 "vm$n: reboot completed (history)" completed_more_than "vm$n" 0
done
for n in "${VMS[@]}"; do
    vm_up "$n" "${BEFORE[$n]}" 60
    check "vm$n: back on the new kernel ($OLD_KERNEL -> ${KERNEL[$n]})" [ "${KERNEL[$n]}" = "$NEW_KERNEL" ]
    check "vm$n: the unit started after network-online.target" started_after_network "$n"
done
wait_for 30 "lock free" lock_free
check "vm1: rebootctl status says nothing to do (exit 0)" [ "$(status_exit 1)" = 0 ]
vssh 1 'rebootctl lock; rebootctl nodes' | sed 's/^/    /'
agent_rss "$SMALL" > "$run/vm$SMALL/rss.txt"
note "vm$SMALL (${MEM[$SMALL]} MiB): agent $(tr '\n' ' ' < "$run/vm$SMALL/rss.txt" | tr -s ' ')"

etcd_invariants

# --- scenario 2 -----------------------------------------------------------------------
stage "scenario 2: power loss of the holder in phase rebooting"
declare -A COMPLETED
for n in 1 2; do
    BEFORE[$n]=${BOOT[$n]}
    COMPLETED[$n]=$(history_count "vm$n" reboot_completed)
done
vssh 1 'touch /var/run/reboot-required'
vssh 2 'touch /var/run/reboot-required'
note "vm1 and vm2 need a reboot; the power of the first holder is cut as soon as its slot is in phase rebooting"
deadline=$((SECONDS + 120))
holder=""
until [ -n "$holder" ]; do
    holder=$(rebooting_node)
    ((SECONDS < deadline)) || fail "no slot went into phase rebooting"
    [ -n "$holder" ] || sleep 0.2
done
h=${holder#vm}
boots_before=$(grep -c . "$run/vm$h/boots")
vm_power_cut "$h"
other=$((h == 1 ? 2 : 1))
note "power of vm$h cut in phase rebooting; vm$other must wait"
wait_for 10 "vm$h's qemu gone" bash -c "! [ -s '$run/vm$h/qemu.pid' ]"
check "vm$h lost its power during the shutdown (the guest had not reset yet)" \
    [ "$(grep -c . "$run/vm$h/boots")" -eq "$boots_before" ]
check "vm$h keeps its slot in phase rebooting while off" holds_phase "vm$h" rebooting
sleep_until=$((SECONDS + 30))
while ((SECONDS < sleep_until)); do
    holds_none "vm$other" || fail "vm$other took a slot while vm$h was off in phase rebooting"
    sleep 2
done
check "vm$other waited 30 s: rebootctl status on vm$other says the lock is busy (exit 4)" [ "$(status_exit "$other")" = 4 ]
vssh "$other" 'rebootctl lock' | sed 's/^/    /'
note "power on vm$h"
vm_power_on "$h"
vm_up "$h" "${BEFORE[$h]}" 240
wait_for 240 "vm$h: reboot completed after power loss" completed_more_than "vm$h" "${COMPLETED[$h]}"
wait_for 300 "vm$other: reboot completed" completed_more_than "vm$other" "${COMPLETED[$other]}"
vm_up "$other" "${BEFORE[$other]}" 60
check "vm1 and vm2 run $NEW_KERNEL" [ "${KERNEL[1]}${KERNEL[2]}" = "$NEW_KERNEL$NEW_KERNEL" ]
wait_for 30 "lock free" lock_free

etcd_invariants

# --- scenario 3 -----------------------------------------------------------------------
stage "scenario 3: a VM that never returns"
BEFORE[3]=${BOOT[3]}
COMPLETED[3]=$(history_count vm3 reboot_completed)
vm_config 2 "$LOST_REBOOT_TIMEOUT_SEC" | vssh 2 'cat > /etc/rebootctl/config.yaml'
vssh 2 'systemctl reload rebootctl'
note "vm2: reboot_timeout_sec $LOST_REBOOT_TIMEOUT_SEC (reloaded); its boot loader will not start it again"
vm_keep_off 2
LOST+=(vm2)
vssh 2 'touch /var/run/reboot-required'
wait_for 60 "vm2 in phase rebooting" holds_phase vm2 rebooting
t_lost=$(now_us)
vssh 3 'touch /var/run/reboot-required'
note "vm3 needs a reboot too"
wait_for 60 "vm2 off" bash -c "! [ -s '$run/vm2/qemu.pid' ]"
check "vm3 waits: rebootctl status on vm3 says the lock is busy (exit 4)" [ "$(status_exit 3)" = 4 ]
vssh 1 'rebootctl lock' | sed 's/^/    /'
wait_for $((LOST_REBOOT_TIMEOUT_SEC + 60)) "vm2's slot freed" holds_none vm2
freed_after=$(secs_since "$t_lost")
note "vm2's slot freed ${freed_after}s after it went into phase rebooting (reboot_timeout_sec $LOST_REBOOT_TIMEOUT_SEC)"
check "freed by the lease, not earlier: ${freed_after}s >= $((LOST_REBOOT_TIMEOUT_SEC - 2))s" \
    [ "${freed_after%.*}" -ge $((LOST_REBOOT_TIMEOUT_SEC - 2)) ]
wait_for 300 "vm3: reboot completed" completed_more_than vm3 "${COMPLETED[3]}"
vm_up 3 "${BEFORE[3]}" 60
wait_for 30 "lock free" lock_free
vssh 1 'rebootctl lock; rebootctl nodes' | tee "$run/nodes-after-lost.txt" | sed 's/^/    /'
vssh 1 'rebootctl nodes --json' > "$run/nodes-after-lost.json"
check "rebootctl nodes: vm2 has no fresh health record and holds no slot" \
    jq -e '.nodes[] | select(.node == "vm2") | .healthy == null and .holding_slot == false' "$run/nodes-after-lost.json"
check "rebootctl nodes: vm3's last reboot is recorded" \
    jq -e '.nodes[] | select(.node == "vm3") | .last_reboot != null' "$run/nodes-after-lost.json"
check "vm2 rebooted (history reboot_started) and never completed" \
    [ "$(history_count vm2 reboot_started)" -gt "$(history_count vm2 reboot_completed)" ]
agent_rss "$SMALL" > "$run/vm$SMALL/rss-2.txt"

etcd_invariants

# --- scenario 4 -----------------------------------------------------------------------
stage "scenario 4: kill switch, systemctl stop under the lock, boot without etcd"
vssh 1 'touch /etc/rebootctl/disable /var/run/reboot-required'
note "vm1: kill switch on, reboot required"
wait_for 30 "vm1 status: kill switch (exit 5)" status_is 1 5
r=$(health_rev vm1)
wait_for 30 "vm1 keeps publishing its health" health_newer_than vm1 "$r"
hold_until=$((SECONDS + 20))
while ((SECONDS < hold_until)); do
    holds_none vm1 || fail "vm1 took a slot with the kill switch on"
    sleep 2
done
check "vm1: blocked by the kill switch for 20 s, service active, health still published" \
    [ "$(vssh 1 systemctl is-active rebootctl)" = active ]
vssh 1 'journalctl -u rebootctl -b -o cat --no-pager' > "$run/vm1/journal-killswitch.txt"
check "vm1: the agent's journal says it is blocked by the kill switch" \
    grep -q '"blocked_by":"kill_switch"' "$run/vm1/journal-killswitch.txt"
grep -m1 '"blocked_by":"kill_switch"' "$run/vm1/journal-killswitch.txt" | sed 's/^/    journal: /'

vssh 1 'touch /etc/vmtest/slow-post-lock && rm /etc/rebootctl/disable'
note "vm1: kill switch off, post-lock health check slowed to 25 s"
wait_for 60 "vm1 holds a slot (checking)" holds_phase vm1 checking
t=$(now_us)
vssh 1 'systemctl stop rebootctl'
note "systemctl stop rebootctl returned after $(secs_since "$t")s"
wait_for 10 "vm1's slot released on stop" holds_none vm1
check "vm1: unit inactive (not failed) after stop" [ "$(vssh 1 'systemctl is-active rebootctl || true')" = inactive ]
check "vm1: no reboot (same boot)" [ "$(vm_boot_id 1)" = "${BOOT[1]}" ]

rev=$(etcd_revision)
observer_stop
etcd_stop
note "etcd stopped (at revision $rev); vm1 rebooted by hand, its agent enabled"
vssh 1 'rm -f /etc/vmtest/slow-post-lock; systemctl reboot' || true
vm_up 1 "${BOOT[1]}" 240
sysstate=""
boot_done() {
    sysstate=$(vssh 1 'systemctl is-system-running' 2> /dev/null || true)
    [ "$sysstate" = running ] || [ "$sysstate" = degraded ]
}
wait_for 120 "vm1 boot finished" boot_done
check "vm1: boot completed without etcd (system $sysstate)" [ "$sysstate" = running ]
check "vm1: rebootctl.service active without etcd" [ "$(vssh 1 systemctl is-active rebootctl)" = active ]
check "vm1: the unit started after network-online.target" started_after_network 1
vssh 1 'journalctl -u rebootctl -b -o cat --no-pager' > "$run/vm1/journal-no-etcd.txt"
check "vm1: the agent's journal of this boot says etcd is unreachable" \
    grep -q 'Connection refused' "$run/vm1/journal-no-etcd.txt"
grep -m1 'Connection refused' "$run/vm1/journal-no-etcd.txt" | sed 's/^/    journal: /'
etcd_start
observer_start $(($(observer_revision) + 1))
note "etcd started again"
wait_for 90 "vm1 publishes its health again" health_newer_than vm1 "$rev"

# --- the invariants --------------------------------------------------------------------
stage "invariants: etcd history and boot logs"
etcd_invariants
jq -r '.reboots[] | "    \(.node): down at rev \(.down_rev), healthy at rev \(.healthy_rev), released at rev \(.released_rev // "-")"' "$run/invariants.json"
check "etcd history: 6 reboots back and healthy (3 upgrade, 2 power loss, 1 never-returns), vm2 lost, none still down" \
    jq -e '(.reboots | length) == 6 and (.lost | map(.node)) == ["vm2"] and .still_down == []' "$run/invariants.json"

# shellcheck disable=SC2016 # run by vm_journal with $JC set
for n in "${VMS[@]}"; do
    vm_journal "$n" '$JC -o json _SYSTEMD_UNIT=rebootctl.service + SYSLOG_IDENTIFIER=vmtest-health' \
        > "$run/vm$n/bootlog.jsonl"
    vm_journal "$n" 'for b in $($JC --list-boots | grep -oE "[0-9a-f]{32}"); do $JC -b "$b" -n 1 -o json; done' \
        > "$run/vm$n/bootlast.jsonl"
    touch "$run/vm$n/panics"
    booted=$(($(grep -c . "$run/vm$n/boots") - $(grep -c . "$run/vm$n/panics" || true)))
    check "vm$n: its journal has $(grep -c . "$run/vm$n/bootlast.jsonl") boots, the boot loader booted it $booted times" \
        [ "$(grep -c . "$run/vm$n/bootlast.jsonl")" -eq "$booted" ]
done
jq -n --argjson slots "$SLOTS" --argjson lost "$(lost_json)" --rawfile offsets "$run/offsets" \
    -f "$here/bootlogs.jq" "$run"/vm*/bootlog.jsonl "$run"/vm*/bootlast.jsonl > "$run/bootlogs.json" || fail "bootlogs.jq"
jq -r '.reboots[] | "    \(.node): reboot started \(.started), healthy \(.healthy) (+\(.down_sec) s), slot released \(.completed)"' "$run/bootlogs.json"
jq -r '.violations[] | "    VIOLATION: \(.)"' "$run/bootlogs.json"
check "boot logs: 6 completed reboots, vm2's never completed" \
    jq -e '(.reboots | length) == 6 and (.lost | map(.node)) == ["vm2"]' "$run/bootlogs.json"
check "boot logs: at most $SLOTS VM down at once (max $(jq .max_down "$run/bootlogs.json")), every release after the VM's first healthy verdict" \
    jq -e '.violations == []' "$run/bootlogs.json"

stage "benchmarks"
bash "$here/bench.sh" "$run" "$SMALL" "${MEM[$SMALL]}" "$accel" > "$run/benchmarks.md"
cat "$run/benchmarks.md"

stage "end"
