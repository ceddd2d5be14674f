# tests/vm/observe.jq: one etcd watch response (etcdctl watch -w json) to
# timeline lines "WHO<TAB>WHAT" for the lock slots, rebootctl's history and
# the guests' health markers; everything else (health records, the
# registry) is left out.
def leaf: sub(".*/"; "");
def obj: if . == "" then null else (fromjson? // null) end;
.Events[]?
| (.kv.key | @base64d) as $k
| ((.kv.value // "") | @base64d | obj) as $v
| ((.prev_kv.value // "") | @base64d | obj) as $p
| if ($k | test("^/rebootctl/lock/(.+/)?slot-[0-9]+$")) then
    if .type == 1 then
      [($p.node // "?"), "released \($k | leaf) (phase was \($p.phase // "?"))"]
    elif $p == null then
      [$v.node, "took \($k | leaf) (phase \($v.phase))"]
    elif $p.phase != $v.phase then
      [$v.node, "\($k | leaf) now in phase \($v.phase)"]
    else empty end
  elif ($k | startswith("/vmtest/healthy/")) and (.type // 0) == 0 then
    ($k | split("/")) as $f
    | [$f[3], "HEALTHY: first healthy verdict of boot \($f[4][0:8]) (\($v.phase), up \($v.uptime_sec) s, kernel \($v.kernel))"]
  elif ($k | startswith("/rebootctl/history/")) and (.type // 0) == 0 then
    [$v.node, "history: \($v.event)"]
  else empty end
| @tsv
