#!/bin/sh
# Exercise contrib/ health scripts against local fakes: a small HTTP server
# on 127.0.0.1 (an ephemeral port) and a stub `rebootctl` on PATH. No other
# network. Usage: sh packaging/test-contrib.sh (from the repository root).
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
contrib=$root/contrib
tmp=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null; fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Never send the test traffic through a proxy.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy
NO_PROXY=127.0.0.1
export NO_PROXY

cat > "$tmp/server.py" <<'PY'
import http.server, json, sys, time

class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def reply(self, code, body=b"", ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if code == 302:
            self.send_header("Location", "/ok")
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        p = self.path
        if p == "/ok":
            self.reply(200, b"ok")
        elif p == "/nocontent":
            self.reply(204)
        elif p == "/bad":
            self.reply(500, b"broken")
        elif p == "/redirect":
            self.reply(302)
        elif p == "/slow":
            time.sleep(3)
            self.reply(200, b"late")
        elif p.endswith("/health"):
            up = p.startswith("/up")
            body = json.dumps({"health": "true" if up else "false",
                               "reason": "" if up else "RAFT NO LEADER"}).encode()
            self.reply(200 if up else 503, body, "application/json")
        else:
            self.reply(404, b"no")

s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
s.daemon_threads = True
s.handle_error = lambda request, address: None  # a client that timed out
with open(sys.argv[1], "w") as f:
    f.write(str(s.server_address[1]))
s.serve_forever()
PY
python3 "$tmp/server.py" "$tmp/port" &
server_pid=$!
i=0
while [ ! -s "$tmp/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -s "$tmp/port" ]; then echo "test server did not start" >&2; exit 1; fi
base="http://127.0.0.1:$(cat "$tmp/port")"

passed=0
failed=0
# expect CODE NAME CMD...: run CMD (environment cleared like rebootctl does,
# plus the assignments given with env in CMD), compare its exit code.
expect() {
    want=$1 name=$2
    shift 2
    env -i PATH="$PATH" NO_PROXY="$NO_PROXY" "$@" > "$tmp/out" 2>&1
    got=$?
    if [ "$got" -eq "$want" ]; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name: exit $got, want $want"
        sed 's/^/     | /' "$tmp/out"
    fi
}

# --- health-http -------------------------------------------------------
h=$contrib/health-http
expect 0 "http: 200 is healthy" "$h" "$base/ok"
expect 0 "http: 204 is healthy" "$h" "$base/nocontent"
expect 0 "http: URL from HEALTH_HTTP_URL" HEALTH_HTTP_URL="$base/ok" "$h"
expect 1 "http: 500 is not healthy" "$h" "$base/bad"
expect 1 "http: 404 is not healthy" "$h" "$base/missing"
expect 1 "http: a redirect is not followed" "$h" "$base/redirect"
expect 1 "http: timeout" HEALTH_HTTP_TIMEOUT=1 "$h" "$base/slow"
expect 1 "http: connection refused" "$h" "http://127.0.0.1:1/ok"
expect 2 "http: no URL" "$h"
expect 2 "http: not a URL" "$h" "ftp://x"
expect 2 "http: bad timeout" HEALTH_HTTP_TIMEOUT=abc "$h" "$base/ok"

# --- health-etcd-quorum ------------------------------------------------
q=$contrib/health-etcd-quorum
expect 0 "etcd: all members healthy" RC_ETCD_ENDPOINTS="$base/up1,$base/up2,$base/up3" "$q"
expect 0 "etcd: 2 of 3 is a majority" RC_ETCD_ENDPOINTS="$base/up1,$base/down2,$base/up3" "$q"
expect 1 "etcd: 1 of 3 is not" RC_ETCD_ENDPOINTS="$base/up1,$base/down2,$base/down3" "$q"
expect 1 "etcd: unreachable member counts as down" RC_ETCD_ENDPOINTS="$base/up1,http://127.0.0.1:1" "$q"
expect 1 "etcd: MIN_HEALTHY=3 needs all" RC_ETCD_ENDPOINTS="$base/up1,$base/down2,$base/up3" ETCD_QUORUM_MIN_HEALTHY=3 "$q"
expect 0 "etcd: ETCD_QUORUM_ENDPOINTS overrides" RC_ETCD_ENDPOINTS="$base/down1" ETCD_QUORUM_ENDPOINTS="$base/up1/" "$q"
expect 2 "etcd: local mode (no endpoints)" RC_ETCD_ENDPOINTS= "$q"
expect 1 "etcd: TLS failure counts as down" RC_ETCD_ENDPOINTS="https://127.0.0.1:$(cat "$tmp/port")/up1" ETCD_QUORUM_CACERT="$tmp/nope.pem" "$q"
expect 2 "etcd: bad ETCD_QUORUM_MIN_HEALTHY" RC_ETCD_ENDPOINTS="$base/up1" ETCD_QUORUM_MIN_HEALTHY=x "$q"
expect 1 "etcd: timeout" RC_ETCD_ENDPOINTS="$base/slow" ETCD_QUORUM_TIMEOUT=1 "$q"

# --- health-fallback-peer ----------------------------------------------
mkdir -p "$tmp/bin"
cat > "$tmp/bin/rebootctl" <<'STUB'
#!/bin/sh
# Stub: `rebootctl nodes --json [--config FILE]` prints $STUB_JSON_FILE.
[ "$1" = nodes ] && [ "$2" = --json ] || { echo "stub: unexpected args: $*" >&2; exit 64; }
if [ "${3:-}" = --config ]; then [ "$4" = /etc/test.yaml ] || exit 2; fi
[ -n "${STUB_FAIL:-}" ] && exit 1
cat "$STUB_JSON_FILE"
STUB
chmod 0755 "$tmp/bin/rebootctl"
PATH="$tmp/bin:$PATH"

node() { # node NAME HEALTHY HOLDING AGE: every field of `rebootctl nodes --json` (NodeSummary)
    phase=null
    [ "$3" = true ] && phase='"checking"'
    printf '{"node":"%s","registered_at":"2026-01-01T00:00:00Z","version":"0.1.0","healthy":%s,"health_reason":"exited 0","health_age_sec":%s,"reboot_required":false,"holding_slot":%s,"slot_phase":%s,"last_reboot":null}' \
        "$1" "$2" "$4" "$3" "$phase"
}
printf '{"nodes":[%s,%s,%s]}' "$(node lb-1 true false 3)" "$(node lb-2 true false 5)" "$(node web-1 true false 1)" > "$tmp/peer-ok.json"
printf '{"nodes":[%s,%s,%s]}' "$(node lb-1 true false 3)" "$(node lb-2 false false 5)" "$(node web-1 true false 1)" > "$tmp/peer-down.json"
printf '{"nodes":[%s,%s]}' "$(node lb-1 true false 3)" "$(node lb-2 true true 5)" > "$tmp/peer-holding.json"
printf '{"nodes":[%s,%s]}' "$(node lb-1 true false 3)" "$(node lb-2 true false 500)" > "$tmp/peer-stale.json"
# No unexpired health record: healthy and health_age_sec are null.
printf '{"nodes":[%s,%s]}' "$(node lb-1 true false 3)" "$(node lb-2 null false null)" > "$tmp/peer-noage.json"
# The peer's clock is ahead of ours: a negative age is fresh.
printf '{"nodes":[%s,%s]}' "$(node lb-1 true false 3)" "$(node lb-2 true false -2)" > "$tmp/peer-skew.json"
printf '{"nodes":[%s,%s,%s]}' "$(node lb-1 true false 3)" "$(node lb-2 false false 5)" "$(node lb-3 true false 2)" > "$tmp/peer-three.json"
printf 'this is not json' > "$tmp/garbage.json"

f=$contrib/health-fallback-peer
for parser in python3 jq; do
    if ! command -v "$parser" >/dev/null 2>&1; then
        echo "skip fallback-peer with $parser: not installed"
        continue
    fi
    P="FALLBACK_PEER_PARSER=$parser"
    E="RC_NODE_NAME=lb-1 RC_PHASE=pre-lock RC_CLUSTER_FALLBACK_NODES=lb-1,lb-2"
    # $E is split on purpose: it holds several assignments for env.
    # shellcheck disable=SC2086
    {
    expect 0 "peer/$parser: other fallback node healthy" $E "$P" STUB_JSON_FILE="$tmp/peer-ok.json" "$f"
    expect 1 "peer/$parser: other fallback node unhealthy" $E "$P" STUB_JSON_FILE="$tmp/peer-down.json" "$f"
    expect 1 "peer/$parser: peer holding a slot does not count" $E "$P" STUB_JSON_FILE="$tmp/peer-holding.json" "$f"
    expect 1 "peer/$parser: stale peer record does not count" $E "$P" STUB_JSON_FILE="$tmp/peer-stale.json" "$f"
    expect 0 "peer/$parser: MAX_AGE raised" $E "$P" FALLBACK_PEER_MAX_AGE_SEC=600 STUB_JSON_FILE="$tmp/peer-stale.json" "$f"
    expect 1 "peer/$parser: no health record does not count" $E "$P" STUB_JSON_FILE="$tmp/peer-noage.json" "$f"
    expect 0 "peer/$parser: negative age (clock skew) counts as fresh" $E "$P" STUB_JSON_FILE="$tmp/peer-skew.json" "$f"
    expect 0 "peer/$parser: one of two others is enough" RC_NODE_NAME=lb-1 RC_PHASE=post-lock RC_CLUSTER_FALLBACK_NODES=lb-1,lb-2,lb-3 "$P" STUB_JSON_FILE="$tmp/peer-three.json" "$f"
    expect 0 "peer/$parser: non-fallback node is not gated" RC_NODE_NAME=web-1 RC_PHASE=pre-lock RC_CLUSTER_FALLBACK_NODES=lb-1,lb-2 "$P" STUB_JSON_FILE="$tmp/peer-down.json" "$f"
    expect 0 "peer/$parser: heartbeat is not gated" RC_NODE_NAME=lb-1 RC_PHASE=heartbeat RC_CLUSTER_FALLBACK_NODES=lb-1,lb-2 "$P" STUB_JSON_FILE="$tmp/peer-down.json" "$f"
    expect 0 "peer/$parser: post-reboot is not gated" RC_NODE_NAME=lb-1 RC_PHASE=post-reboot RC_CLUSTER_FALLBACK_NODES=lb-1,lb-2 "$P" STUB_JSON_FILE="$tmp/peer-down.json" "$f"
    expect 0 "peer/$parser: --config passed through" $E "$P" FALLBACK_PEER_CONFIG=/etc/test.yaml STUB_JSON_FILE="$tmp/peer-ok.json" "$f"
    expect 2 "peer/$parser: rebootctl fails" $E "$P" STUB_FAIL=1 STUB_JSON_FILE="$tmp/peer-ok.json" "$f"
    expect 2 "peer/$parser: unparsable output" $E "$P" STUB_JSON_FILE="$tmp/garbage.json" "$f"
    expect 2 "peer/$parser: no fallback nodes" RC_NODE_NAME=lb-1 RC_PHASE=pre-lock "$P" STUB_JSON_FILE="$tmp/peer-ok.json" "$f"
    }
done

echo "contrib: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
