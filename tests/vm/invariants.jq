# tests/vm/invariants.jq: the fleet invariants over etcd's history.
#
# Input (jq -s): every watch response since revision 1
# (`etcdctl watch --prefix / --prev-kv --rev=1 -w json`), so the events are
# in etcd's own total order, the revision. A VM is DOWN from the revision at
# which its slot went into phase rebooting until the revision of its health
# marker (/vmtest/healthy/<node>/<boot id>, written by the guest's health
# script before it reports healthy) from ANOTHER boot. Checked:
#   - never more than $slots VMs down at once;
#   - no VM's slot is deleted while it is down (released before back and
#     healthy), except for the VMs in $lost, whose reboot never completes
#     and whose slot must expire (reboot_timeout_sec).
# Output: {max_down, violations, reboots, lost, still_down}.
def obj: if . == "" then null else (fromjson? // null) end;
def slot_key: test("^/rebootctl/lock/(.+/)?slot-[0-9]+$");

[ .[] | .Events[]?
  | { rev: .kv.mod_revision, del: (.type == 1), key: (.kv.key | @base64d),
      v: ((.kv.value // "") | @base64d | obj), p: ((.prev_kv.value // "") | @base64d | obj) }
  | if (.key | slot_key) then
      if .del then {rev, kind: "released", node: .p.node}
      elif .v.phase == "rebooting" and (.p.phase // "") != "rebooting" then
        {rev, kind: "down", node: .v.node, boot: .v.boot_id}
      else empty end
    elif (.key | startswith("/vmtest/healthy/")) and (.del | not) then
      (.key | split("/")) as $f | {rev, kind: "healthy", node: $f[3], boot: $f[4]}
    else empty end ]
| sort_by(.rev)
| reduce .[] as $e ({down: {}, back: {}, max_down: 0, violations: [], reboots: [], lost: []};
    if $e.kind == "down" then
      .down[$e.node] = {boot: $e.boot, rev: $e.rev}
      | .max_down = ([.max_down, (.down | length)] | max)
      | if (.down | length) > $slots then
          .violations += ["revision \($e.rev): \(.down | keys | join(" and ")) down at once (more than \($slots))"]
        else . end
    elif $e.kind == "healthy" then
      if .down[$e.node] != null and .down[$e.node].boot != $e.boot then
        .reboots += [{node: $e.node, down_rev: .down[$e.node].rev, healthy_rev: $e.rev}]
        | .back[$e.node] = ((.reboots | length) - 1)
        | .down |= del(.[$e.node])
      else . end
    elif .down[$e.node] != null then
      if ($lost | index($e.node)) != null then
        .lost += [{node: $e.node, down_rev: .down[$e.node].rev, freed_rev: $e.rev}]
        | .down |= del(.[$e.node])
      else
        .violations += ["revision \($e.rev): \($e.node) released its slot before it was back and healthy"]
      end
    elif .back[$e.node] != null then
      .reboots[.back[$e.node]].released_rev = $e.rev
      | .back |= del(.[$e.node])
    else . end)
| {max_down, violations, reboots, lost, still_down: (.down | keys)}
