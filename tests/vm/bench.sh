#!/usr/bin/env bash
# tests/vm/bench.sh RUN_DIR N MEM_MB ACCEL: the "Real hosts" section for
# BENCHMARKS.md from a vm-test run: every completed reboot's slot time on the
# host clock (etcd watch, boot loader), split into its steps, and the agent's
# memory in the small VM N (MEM_MB) from RUN_DIR/vmN/rss*.txt.
set -euo pipefail
export LC_ALL=C
run=${1:?usage: bench.sh RUN_DIR N MEM_MB ACCEL}
small=vm${2:?}
mem=${3:?}
accel=${4:?}

# Every reboot that went all the way: slot taken -> phase rebooting -> guest
# reset (qemu exit) or power lost -> power on -> first healthy verdict ->
# slot released. Times are when the test saw them (watch, boot loader).
rows=$(jq -R -r -n --rawfile timeline "$run/timeline" '
  def obj: if . == "" then null else (fromjson? // null) end;
  def s: (. / 100000 | round) as $d | "\($d / 10 | floor).\($d % 10)";
  ([$timeline | split("\n")[] | capture("^(?<t>[0-9]+) (?<who>vm[0-9]+) (?<what>.*)$")
    | {t: (.t | tonumber), node: .who,
       kind: (if (.what | startswith("guest reset")) or (.what | startswith("POWER LOST")) then "off"
              elif (.what | startswith("power on")) then "on" else "" end),
       cut: (.what | startswith("POWER LOST"))}
    | select(.kind != "")]) as $machine
  | ([$timeline | split("\n")[] | capture("^(?<t>[0-9]+) == scenario [0-9]+: (?<name>.*)$")
      | {t: (.t | tonumber), name}]) as $stages
  | [inputs | capture("^(?<t>[0-9]+) (?<j>.*)$") | (.t | tonumber) as $t | (.j | fromjson) | .Events[]?
     | {t: $t, del: (.type == 1), key: (.kv.key | @base64d),
        v: ((.kv.value // "") | @base64d | obj), p: ((.prev_kv.value // "") | @base64d | obj)}
     | if (.key | test("^/rebootctl/lock/(.+/)?slot-[0-9]+$")) then
         if .del then {t, kind: "released", node: .p.node}
         elif .p == null then {t, kind: "taken", node: .v.node}
         elif .v.phase == "rebooting" and .p.phase != "rebooting" then {t, kind: "rebooting", node: .v.node, boot: .v.boot_id}
         else empty end
       elif (.key | startswith("/vmtest/healthy/")) and (.del | not) then
         (.key | split("/")) as $f | {t, kind: "healthy", node: $f[3], boot: $f[4]}
       else empty end]
  | group_by(.node) | map(sort_by(.t)
      | reduce .[] as $e ({cur: null, out: []};
          if $e.kind == "taken" then .cur = {node: $e.node, taken: $e.t}
          elif .cur == null then .
          elif $e.kind == "rebooting" then .cur.rebooting = $e.t | .cur.boot = $e.boot
          elif $e.kind == "healthy" then
            if .cur.rebooting != null and .cur.healthy == null and $e.boot != .cur.boot then .cur.healthy = $e.t else . end
          elif .cur.healthy != null then .out += [.cur + {released: $e.t}] | .cur = null
          else .cur = null end)
      | .out[]) | flatten | sort_by(.taken)
  | .[] | . as $r
  | ([$machine[] | select(.node == $r.node and .kind == "off" and .t > $r.rebooting and .t < $r.healthy)] | first) as $off
  | ([$machine[] | select(.node == $r.node and .kind == "on" and .t > $r.rebooting and .t < $r.healthy)] | last) as $on
  | ([$stages[] | select(.t <= $r.taken)] | last | .name // "-") as $stage
  | [ .node, $stage,
      ((.released - .taken) | s),
      ((.rebooting - .taken) | s),
      (if $off then (($off.t - .rebooting) | s | tostring) + (if $off.cut then " (power cut)" else "" end) else "-" end),
      (if $off and $on then (($on.t - $off.t) | s) else "-" end),
      (if $on then ((.healthy - $on.t) | s) else "-" end),
      ((.released - .healthy) | s) ]
  | "| " + (map(tostring) | join(" | ")) + " |"' "$run/watch.log")

small_rows=$(grep "^| $small " <<< "$rows" || true)
rss() { sed -n "s/^$1:[[:space:]]*//p" "$2" | head -n 1; }
when=$(date -u +%F)

r1=$run/$small/rss.txt r2=$run/$small/rss-2.txt
cat <<EOF
## Real hosts (make vm-test)

Written by \`make vm-test\` (tests/vm/bench.sh, run of $when): Debian
bookworm guests under qemu (accel=$accel, 1 vCPU each) on $(nproc) host CPUs
shared with other builds; the kernel upgrade and the reboots are real
(\`dpkg -i\`, the packaged reboot command, the new kernel booted). Times are
on the host clock as the test saw them (etcd watch, boot loader), in
seconds. "Power on -> first healthy" includes the test's health script
waiting for 30 s of uptime (a service warming up).

**The agent in $small ($mem MiB)**, idle in cluster mode (check and health
heartbeat every 5 s) after its first reboot: VmRSS $(rss VmRSS "$r1"), VmHWM
$(rss VmHWM "$r1") (RssAnon $(rss RssAnon "$r1"), RssFile $(rss RssFile "$r1")); the guest has
MemTotal $(rss MemTotal "$r1"), MemAvailable $(rss MemAvailable "$r1").$(if [ -s "$r2" ]; then
    echo " After its second reboot: VmRSS $(rss VmRSS "$r2"), VmHWM $(rss VmHWM "$r2")."; fi)

**Slot taken -> slot released** for the real reboots of $small: $(if [ -n "$small_rows" ]; then
    while IFS='|' read -r _ _ _ total _; do printf '%s s, ' "$(echo "$total" | tr -d ' ')"; done <<< "$small_rows" | sed 's/, $//'
else echo "no completed reboot"; fi).

| VM | scenario | slot taken -> released | checks under the lock | phase rebooting -> guest reset | reset -> power on (boot loader) | power on -> first healthy | healthy -> released |
|---|---|---|---|---|---|---|---|
$rows
EOF
