# tests/vm/bootlogs.jq: the fleet invariants over the VMs' own boot logs.
#
# Inputs (jq -n, files named .../vmN/bootlog.jsonl and .../vmN/bootlast.jsonl):
# each VM's journal entries of rebootctl.service and of the health script
# (`journalctl -o json`), and the last journal entry of each of its boots.
# $offsets: "N BOOT_ID OFFSET_US" lines, each boot's clock minus the host's,
# measured over ssh when the boot came up, so guest times become host times.
#
# A VM is DOWN from the agent's reboot_started (or, when that line was lost
# with the power, the last entry of the boot that went down) until the
# health script's first healthy verdict in the next boot. Checked:
#   - in every VM, reboot_completed (logged after the slot is released)
#     comes after that first healthy verdict of the same boot;
#   - every reboot completes, except the VMs in $lost;
#   - across VMs, never more than $slots down at once (lost reboots left out:
#     they never come back, and their slot is freed by its lease).
# Output: {max_down, violations, reboots, lost}.
def offsets:
  [$offsets | split("\n")[] | select(length > 0) | split(" ")
   | {key: ("vm" + .[0] + "/" + (.[1] | gsub("-"; ""))), value: (.[2] | tonumber)}] | from_entries;
def hms: (. / 1000000 | floor | strftime("%H:%M:%S")) + "." + ((. / 1000 | floor) % 1000 | tostring | ("00" + .)[-3:]);

offsets as $off
| [inputs | . + {vm: (input_filename | capture("/(?<v>vm[0-9]+)/[^/]*$").v),
                 file: (input_filename | sub(".*/"; ""))}] as $all
| ($all | map(select(.file == "bootlast.jsonl"))
   | map({vm, boot: ._BOOT_ID, t: (.__REALTIME_TIMESTAMP | tonumber)})) as $lasts
| def host($vm; $boot; $t): $t - ($off["\($vm)/\($boot)"] // 0);
  def prev_boot_end($vm; $boot):
    ($lasts | map(select(.vm == $vm)) | sort_by(.t)) as $b
    | ($b | map(.boot) | index($boot)) as $i
    | if $i != null and $i > 0 then host($vm; $b[$i - 1].boot; $b[$i - 1].t) else null end;
  $all | map(select(.file == "bootlog.jsonl"))
  | map({vm, boot: ._BOOT_ID, t: (.__REALTIME_TIMESTAMP | tonumber),
         what: (if .SYSLOG_IDENTIFIER == "vmtest-health" then "healthy"
                else (((.MESSAGE | fromjson?) // {}) | .event // "") end)})
  | map(select(.what == "healthy" or .what == "reboot_started" or .what == "reboot_completed"))
  | group_by(.vm)
  | map(sort_by(.t)
      | reduce .[] as $e ({pending: null, healthy_in: {}, out: [], lost: [], violations: []};
          if $e.what == "reboot_started" then
            (if .pending != null then
               .violations += ["\($e.vm): a second reboot started before the one at \(.pending.start | hms) completed"]
             else . end)
            | .pending = {node: $e.vm, boot: $e.boot, start: host($e.vm; $e.boot; $e.t), start_from: "reboot_started"}
          elif $e.what == "healthy" then
            .healthy_in[$e.boot] //= host($e.vm; $e.boot; $e.t)
          elif .pending != null and .pending.boot == $e.boot then .
          else
            (.pending // {node: $e.vm, start: prev_boot_end($e.vm; $e.boot),
                          start_from: "end of the previous boot (reboot_started lost with the power)"}) as $p
            | .healthy_in[$e.boot] as $h
            | if $h == null or $h > host($e.vm; $e.boot; $e.t) then
                .violations += ["\($e.vm): slot released (reboot_completed at \(host($e.vm; $e.boot; $e.t) | hms)) before the first healthy verdict of its boot"]
              elif $p.start == null then
                .violations += ["\($e.vm): a reboot completed whose start is in no boot log"]
              else
                .out += [$p + {healthy: $h, completed: host($e.vm; $e.boot; $e.t)}]
              end
            | .pending = null
          end)
      | if .pending != null then
          .pending.node as $n
          | if ($lost | index($n)) != null then .lost += [.pending]
          else .violations += ["\(.pending.node): the reboot started at \(.pending.start | hms) never completed"] end
        else . end)
  | {reboots: (map(.out[]) | sort_by(.start)), lost: map(.lost[]), violations: map(.violations[])}
  | .reboots as $r
  | ([$r[] | {t: .start, d: 1}, {t: .healthy, d: -1}] | sort_by(.t, .d)
     | reduce .[] as $x ({cur: 0, max: 0}; .cur += $x.d | .max = ([.max, .cur] | max)) | .max) as $max
  | .max_down = $max
  | .violations += [ select($max > $slots) | range(0; $r | length) as $i | range($i + 1; $r | length) as $j
                     | select($r[$i].node != $r[$j].node and $r[$i].start < $r[$j].healthy and $r[$j].start < $r[$i].healthy)
                     | "\($r[$i].node) and \($r[$j].node) down at once (\([$r[$i].start, $r[$j].start] | max | hms) - \([$r[$i].healthy, $r[$j].healthy] | min | hms))" ]
  | .reboots |= map(. + {down_sec: (((.healthy - .start) / 100000 | floor) / 10),
                         started: (.start | hms), healthy: (.healthy | hms), completed: (.completed | hms)})
