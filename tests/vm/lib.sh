# tests/vm/lib.sh: the machinery of tests/vm/vm-test.sh, sourced by it.
#
# The timeline, waiting with deadlines, the network namespace and its etcd,
# the per-VM disks, the boot loader (one supervisor per VM that starts qemu
# with the newest kernel in the VM's disk every time the guest reboots) and
# ssh into the guests. Everything started here is recorded by pid so that
# cleanup() ends exactly that and nothing else.
#
# The caller sets: here (tests/vm), run (the run directory), ns (the
# namespace), VMS (the VM numbers), base_img, accel.
# shellcheck shell=bash
# shellcheck disable=SC2154 # here, run, ns, base_img and accel come from vm-test.sh

BR_IP=192.0.2.1
ETCD_URL=http://$BR_IP:2379
ETCD_BIN=${ETCD_BIN:-/usr/bin/etcd}
ETCDCTL_BIN=${ETCDCTL_BIN:-/usr/bin/etcdctl}
QEMU_BIN=${QEMU_BIN:-qemu-system-x86_64}

vm_ip() { echo "192.0.2.1$1"; }

# --- the timeline ----------------------------------------------------------

T0_US=${T0_US:-}

now_us() { local t=$EPOCHREALTIME; echo "${t/./}"; }

# fmt_rel US: "+  12.345s" relative to T0.
fmt_rel() {
    local d=$(($1 - T0_US)) sign=+
    if ((d < 0)); then sign=-; d=$((-d)); fi
    printf '%s%4d.%03ds' "$sign" $((d / 1000000)) $((d / 1000 % 1000))
}

# tl WHO TEXT: one timeline line, printed and appended to $run/timeline.
tl() {
    local t
    t=$(now_us)
    printf '%s %s %s\n' "$t" "$1" "$2" >> "$run/timeline"
    printf '%s  %-6s  %s\n' "$(fmt_rel "$t")" "$1" "$2"
}

# secs_since US: whole seconds since a now_us() stamp, with one decimal.
secs_since() {
    local d=$(($(now_us) - $1))
    printf '%d.%d' $((d / 1000000)) $((d / 100000 % 10))
}

fail() {
    tl "FAIL" "$*"
    exit 1
}

# wait_for SECONDS WHAT CMD...: poll CMD every second until it succeeds.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" > /dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out after ${limit}s waiting for: $what"
        sleep 1
    done
}

# --- network namespace and etcd ----------------------------------------------

net_up() {
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link add br0 type bridge
    ip -n "$ns" addr add "$BR_IP/24" dev br0
    ip -n "$ns" link set br0 up
    local n
    for n in "${VMS[@]}"; do
        ip -n "$ns" tuntap add "tap$n" mode tap
        ip -n "$ns" link set "tap$n" master br0
        ip -n "$ns" link set "tap$n" up
    done
}

ectl() { ip netns exec "$ns" "$ETCDCTL_BIN" --endpoints="$ETCD_URL" --command-timeout=5s "$@"; }

etcd_start() {
    mkdir -p "$run/etcd"
    ip netns exec "$ns" "$ETCD_BIN" --name vmtest --data-dir "$run/etcd/data" \
        --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster vmtest=http://127.0.0.1:2380 >> "$run/etcd/log" 2>&1 &
    echo $! > "$run/etcd/pid"
    wait_for 30 "etcd on $ETCD_URL" ectl endpoint health
}

etcd_stop() {
    local pid
    pid=$(cat "$run/etcd/pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -f "$run/etcd/pid"
}

# etcd_history REV: every watch response from revision 1 up to REV, one
# JSON document per line (etcd's whole history: nothing is compacted here).
etcd_history() {
    local line pid h
    exec {h}< <(exec ip netns exec "$ns" "$ETCDCTL_BIN" --endpoints="$ETCD_URL" \
        watch --prefix / --prev-kv --rev=1 -w json 2> /dev/null)
    pid=$!
    while IFS= read -r -t 30 -u "$h" line; do
        printf '%s\n' "$line"
        [[ $line =~ \"revision\":([0-9]+) ]] && ((BASH_REMATCH[1] >= $1)) && break
    done
    kill "$pid" 2> /dev/null || true
    exec {h}<&-
}

etcd_revision() { ectl endpoint status -w json | jq '.[0].Status.header.revision'; }

# --- the etcd observer ---------------------------------------------------------
# A watch on the whole keyspace from revision FROM; every response is stored
# in $run/watch.log as "<host time us> <json>" and the interesting events
# (lock slots, rebootctl's history, the guests' health markers) go to the
# timeline as they happen.

observer_start() {
    local from=${1:-1}
    (
        exec 3< <(exec ip netns exec "$ns" "$ETCDCTL_BIN" --endpoints="$ETCD_URL" \
            watch --prefix / --prev-kv --rev="$from" -w json 2>> "$run/observer.err")
        echo $! > "$run/observer.pid"
        local line t who what
        while IFS= read -r -u 3 line; do
            t=$(now_us)
            printf '%s %s\n' "$t" "$line" >> "$run/watch.log"
            while IFS=$'\t' read -r who what; do
                [ -n "$who" ] || continue
                printf '%s %s %s\n' "$t" "$who" "$what" >> "$run/timeline"
                printf '%s  %-6s  %s\n' "$(fmt_rel "$t")" "$who" "$what"
            done < <(jq -r -f "$here/observe.jq" <<< "$line")
        done
    ) &
    echo $! > "$run/observer.loop.pid"
}

observer_stop() {
    local p
    p=$(cat "$run/observer.pid" 2>/dev/null) && kill "$p" 2>/dev/null
    p=$(cat "$run/observer.loop.pid" 2>/dev/null) && { wait "$p" 2>/dev/null || true; }
    rm -f "$run/observer.pid" "$run/observer.loop.pid"
}

# The last revision the observer has seen.
observer_revision() {
    tail -n 1 "$run/watch.log" 2>/dev/null | cut -d' ' -f2- | jq '.Header.revision' 2>/dev/null || echo 0
}

# --- disks and the boot loader -------------------------------------------------

# newest_kernel IMG: the newest kernel release in IMG's /boot that has both a
# vmlinuz and an initrd (what update-grub would have put at the top of the
# menu: the kernel postinst hooks run after the initramfs is built).
newest_kernel() {
    local names
    names=$(debugfs -R 'ls -p /boot' "$1" 2>/dev/null | awk -F/ '{ print $6 }')
    local k
    while IFS= read -r k; do
        if grep -qx "initrd.img-$k" <<< "$names"; then
            echo "$k"
            return 0
        fi
    done < <(sed -n 's/^vmlinuz-//p' <<< "$names" | sort -V -r)
    return 1
}

# vm_disk N: the disk of VM N, a copy of the base image with its own identity.
vm_disk() {
    local n=$1 d=$run/vm$1
    mkdir -p "$d/id/etc/ssh" "$d/id/etc/systemd/network" "$d/id/root/.ssh"
    cp --sparse=always "$base_img" "$d/disk.img"
    echo "vm$n" > "$d/id/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tvm%s\n' "$n" > "$d/id/etc/hosts"
    od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$d/id/etc/machine-id"
    echo >> "$d/id/etc/machine-id"
    ssh-keygen -q -t ed25519 -N '' -C "vm$n" -f "$d/id/etc/ssh/ssh_host_ed25519_key"
    printf '%s %s\n' "$(vm_ip "$n")" "$(cut -d' ' -f1-2 "$d/id/etc/ssh/ssh_host_ed25519_key.pub")" >> "$run/known_hosts"
    printf '[Match]\nName=en*\n\n[Network]\nAddress=%s/24\n' "$(vm_ip "$n")" \
        > "$d/id/etc/systemd/network/10-vmtest.network"
    install -m 0600 "$run/id_ed25519.pub" "$d/id/root/.ssh/authorized_keys"
    chmod 0644 "$d/id/etc/hostname" "$d/id/etc/hosts" "$d/id/etc/machine-id" \
        "$d/id/etc/systemd/network/10-vmtest.network"
    local f cmds=$d/debugfs.cmds
    : > "$cmds"
    while IFS= read -r f; do
        printf 'rm /%s\nwrite %s /%s\n' "$f" "$d/id/$f" "$f" >> "$cmds"
    done < <(cd "$d/id" && find . -type f | sed 's|^\./||')
    debugfs -w -f "$cmds" "$d/disk.img" > "$d/debugfs.log" 2>&1
    # debugfs does not stop on a failed command: check what it wrote.
    [ "$(debugfs -R 'cat /etc/hostname' "$d/disk.img" 2>/dev/null)" = "vm$n" ] \
        || fail "vm$n: could not write its identity into the disk (see $d/debugfs.log)"
}

# vm_supervise N MEM_MB: the boot loader of VM N, run in the background.
# Starts qemu with the newest kernel in the disk; when qemu exits (the guest
# rebooted: -no-reboot), starts it again, unless $d/hold exists (powered off
# by the test until it is removed) or $d/off (the end). Each start is a line
# "<time> <kernel>" in $d/boots, each boot that panicked also one in
# $d/panics. no_timer_check: on a loaded host the kernel's IO-APIC timer
# check can fail under TCG and panic the boot.
vm_supervise() {
    local n=$1 mem=$2 d=$run/vm$1 k rc con
    while [ ! -e "$d/off" ]; do
        if [ -e "$d/hold" ]; then
            [ -e "$d/held" ] || { touch "$d/held"; tl "vm$n" "boot loader: kept off by the test"; }
            sleep 0.5
            continue
        fi
        rm -f "$d/held"
        if ! k=$(newest_kernel "$d/disk.img"); then
            tl "vm$n" "boot loader: no kernel with an initrd in /boot; stays off"
            return 1
        fi
        debugfs -R "dump /boot/vmlinuz-$k $d/vmlinuz" "$d/disk.img" > /dev/null 2>&1
        debugfs -R "dump /boot/initrd.img-$k $d/initrd" "$d/disk.img" > /dev/null 2>&1
        echo "$(now_us) $k" >> "$d/boots"
        tl "vm$n" "power on: boot loader starts kernel $k"
        printf '\n===== vm-test: power on, kernel %s, %s =====\n' "$k" "$(date -u +%FT%T.%3NZ)" >> "$d/console.log"
        con=$(stat -c %s "$d/console.log")
        ip netns exec "$ns" "$QEMU_BIN" -name "vm$n" -machine "accel=$accel" -m "$mem" -smp 1 \
            -nodefaults -no-user-config -display none -no-reboot \
            -kernel "$d/vmlinuz" -initrd "$d/initrd" \
            -append "root=/dev/vda rw console=ttyS0 quiet systemd.show_status=1 panic=-1 no_timer_check" \
            -drive "file=$d/disk.img,format=raw,if=virtio,cache=unsafe" \
            -netdev "tap,id=n0,ifname=tap$n,script=no,downscript=no" \
            -device "virtio-net-pci,netdev=n0,mac=52:54:00:00:00:1$n" \
            -device virtio-rng-pci \
            -chardev "file,id=con,path=$d/console.log,append=on" -serial chardev:con \
            -pidfile "$d/qemu.pid" &
        rc=0
        wait $! 2> /dev/null || rc=$?
        rm -f "$d/qemu.pid"
        # A boot that panicked never ran the guest's userspace: it is not a
        # boot of the host (the boot-log checks count the others).
        if tail -c "+$((con + 1))" "$d/console.log" | grep -q 'Kernel panic'; then
            echo "$(now_us) $k" >> "$d/panics"
            tl "vm$n" "KERNEL PANIC during boot (console.log); starting it again"
        fi
        if [ -e "$d/cut" ]; then
            rm -f "$d/cut"
            tl "vm$n" "POWER LOST (qemu killed by the test)"
        elif [ "$rc" -eq 0 ]; then
            tl "vm$n" "guest reset: qemu exited (-no-reboot)"
        else
            tl "vm$n" "qemu exited with status $rc"
        fi
    done
}

vm_start() {
    local n=$1 mem=$2
    vm_supervise "$n" "$mem" &
    echo $! > "$run/vm$n/supervisor.pid"
}

# vm_power_cut N: kill qemu (no shutdown) and keep the VM off until vm_power_on.
vm_power_cut() {
    local d=$run/vm$1 pid
    touch "$d/hold" "$d/cut"
    pid=$(cat "$d/qemu.pid" 2>/dev/null) || fail "vm$1: no qemu to cut the power of"
    kill -KILL "$pid"
}

vm_power_on() { rm -f "$run/vm$1/hold"; }

# vm_keep_off N: when the guest next reboots, it does not come back.
vm_keep_off() { touch "$run/vm$1/hold"; }

vm_running() { [ -s "$run/vm$1/qemu.pid" ]; }

vms_stop() {
    local n pid
    for n in "${VMS[@]}"; do
        [ -d "$run/vm$n" ] || continue
        touch "$run/vm$n/off"
        pid=$(cat "$run/vm$n/qemu.pid" 2>/dev/null) && kill -KILL "$pid" 2>/dev/null
    done
    for n in "${VMS[@]}"; do
        pid=$(cat "$run/vm$n/supervisor.pid" 2>/dev/null) || continue
        wait "$pid" 2>/dev/null || true
        rm -f "$run/vm$n/supervisor.pid"
    done
}

# --- ssh into the guests -------------------------------------------------------

SSH_OPTS=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o ConnectTimeout=5
    -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o LogLevel=ERROR)

# vssh N CMD: run the shell command CMD as root on VM N (60 s at most).
vssh() {
    local n=$1
    shift
    timeout "${VSSH_TIMEOUT:-60}" ip netns exec "$ns" ssh -i "$run/id_ed25519" \
        -o UserKnownHostsFile="$run/known_hosts" "${SSH_OPTS[@]}" "root@$(vm_ip "$n")" "$@"
}

# vscp N FILE DEST: copy a host file into VM N.
vscp() {
    timeout 300 ip netns exec "$ns" scp -q -i "$run/id_ed25519" \
        -o UserKnownHostsFile="$run/known_hosts" "${SSH_OPTS[@]}" "$2" "root@$(vm_ip "$1"):$3"
}

vm_boot_id() { vssh "$1" cat /proc/sys/kernel/random/boot_id 2>/dev/null; }
