#!/usr/bin/env bash
# make demo: the agent daemon with its embedded SQLite store and a demo policy; a demo VM
# created and run through the API with curl; its memory and conversions read back; a policy
# change pushed with If-Match; then SIGTERM, and the store checked.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
agent=$root/.build/debug/memgate-agent
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill -TERM $pid 2>/dev/null && wait $pid 2>/dev/null; rm -rf "$work"' EXIT
say() { printf '\n\033[1m--- %s\033[0m\n' "$*"; }

mkdir -p "$work/images"
cp "$root/.build/guests/"{hello,implicit,explicit,smp}.elf "$work/images/"
token=demo-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf 'demo admin %s\n' "$token" > "$work/tokens"
chmod 600 "$work/tokens"
cat > "$work/policy.json" <<'JSON'
{
  "defaults": { "explicit": "allow", "implicit": "allow", "discard": true },
  "rules": [
    { "match": { "vm": "tenant-b-*", "direction": "to_shared", "trigger": "explicit" },
      "action": "deny", "reason": "tenant b shares nothing explicitly" }
  ],
  "limits": { "max_shared_bytes": 67108864, "max_conversions_per_second": 50000 }
}
JSON

say "memgate-agent caps"
"$agent" caps

say "memgate-agent serve (store: $work/memgate.db)"
"$agent" serve --listen 127.0.0.1:0 --unix "$work/agent.sock" --db "$work/memgate.db" \
    --images-dir "$work/images" --token-file "$work/tokens" --policy "$work/policy.json" \
    --run-dir "$work/run" --stop-vms-on-exit > "$work/agent.out" 2> "$work/agent.err" &
pid=$!
for _ in $(seq 100); do grep -q "serving on" "$work/agent.out" 2>/dev/null && break; sleep 0.1; done
cat "$work/agent.out"
base=$(sed -n 's/.*\(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/agent.out")
api() { curl -sS -H "Authorization: Bearer $token" "$@"; echo; }

say "GET /healthz (no token needed)"
curl -sS "$base/healthz"
say "GET /v1/host"
api "$base/v1/host"
say "POST /v1/vms: a guest that touches memory through the wrong alias (two implicit conversions)"
api -H 'Content-Type: application/json' -d '{"name":"tenant-a-1","image":"implicit.elf","memory_mib":32,"labels":{"tenant":"a"}}' "$base/v1/vms"
say "POST /v1/vms: explicit conversions, one denied by the demo policy"
api -H 'Content-Type: application/json' -d '{"name":"tenant-b-1","image":"explicit.elf","memory_mib":32,"command_line":"0:4:10 0:1:0"}' "$base/v1/vms"
sleep 1
say "GET /v1/vms"
api "$base/v1/vms"
say "GET /v1/vms/1/console"
api "$base/v1/vms/1/console"
say "GET /v1/vms/2/memory"
api "$base/v1/vms/2/memory"
say "GET /v1/conversions"
api "$base/v1/conversions?limit=10"
say "GET /v1/conversions?decision=denied"
api "$base/v1/conversions?decision=denied"
say "GET /v1/events?after=0&limit=3"
api "$base/v1/events?after=0&limit=3"
say "PUT /v1/policy with If-Match (428 without it, 412 when stale)"
etag=$(curl -sS -D - -o /dev/null -H "Authorization: Bearer $token" "$base/v1/policy" | sed -n 's/^ETag: //Ip' | tr -d '\r')
echo "ETag: $etag"
api -X PUT -H 'Content-Type: application/json' -H "If-Match: $etag" -d '{"defaults":{"implicit":"deny"}}' "$base/v1/policy"
api -X PUT -H 'Content-Type: application/json' -H "If-Match: $etag" -d '{"defaults":{"implicit":"allow"}}' "$base/v1/policy"
say "POST /v1/vms under the new policy: the implicit fault is denied, only that VM stops (faulted)"
api -H 'Content-Type: application/json' -d '{"name":"tenant-a-2","image":"implicit.elf","memory_mib":32}' "$base/v1/vms"
sleep 1
api "$base/v1/vms/3"
say "GET /v1/policy/history (who, through what channel)"
api "$base/v1/policy/history"
say "GET /v1/audit/head: every event carries SHA-256 of the one before and itself"
api "$base/v1/audit/head"
say "GET /v1/vms/2/memory?at=EVENT: the memory as it was after an event, from the records"
first=$(curl -sS -H "Authorization: Bearer $token" "$base/v1/conversions?vm=2&decision=applied&limit=1" | sed -n 's/.*"event_id":\([0-9]*\).*/\1/p')
api "$base/v1/vms/2/memory?at=${first:-1}"
say "the Unix socket needs no token"
curl -sS --unix-socket "$work/agent.sock" http://agent/v1/vms | head -c 120; echo " ..."
ctl=$root/.build/debug/memgatectl
printf '%s' "$token" > "$work/ctl-token"
printf '%s demo zone=lab\nunix://%s/agent.sock demo-socket zone=local\n' "$base" "$work" > "$work/fleet.hosts"
say "memgatectl hosts (the same agent over TCP and over its Unix socket)"
"$ctl" hosts --hosts "$work/fleet.hosts" --token-file "$work/ctl-token"
say "memgatectl conversions --decision denied"
"$ctl" conversions --hosts "$work/fleet.hosts" --token-file "$work/ctl-token" --decision denied --select zone=lab
say "memgatectl memory demo 1"
"$ctl" memory demo 1 --hosts "$work/fleet.hosts" --token-file "$work/ctl-token"
say "memgatectl policy push (dry run, then PUT with If-Match)"
"$ctl" policy push "$work/policy.json" --host "$base" --token-file "$work/ctl-token"
say "memgatectl audit pull --into fleet.db, twice: the second adds nothing"
"$ctl" audit pull --into "$work/fleet.db" --host "$base" --token-file "$work/ctl-token"
"$ctl" audit pull --into "$work/fleet.db" --host "$base" --token-file "$work/ctl-token"
say "memgatectl audit verify: the agent's chain still extends the head the fleet database keeps"
"$ctl" audit verify --into "$work/fleet.db" --host "$base" --token-file "$work/ctl-token"
sqlite3 -header -column "$work/fleet.db" "SELECT host, direction, trigger, decision, conversions, bytes FROM fleet_conversion_summary"

say "GET /metrics (excerpt)"
curl -sS "$base/metrics" | grep -E '^memgate_(conversions_total|vms\{state="(stopped|faulted)"|memory_faults_total)'

say "SIGTERM with --stop-vms-on-exit: every VM ends and is recorded, the store is flushed (without it, VMs keep running for the next agent)"
kill -TERM $pid; wait $pid; pid=""
cat "$work/agent.err" | grep -v '^$' | tail -2
"$agent" db check --db "$work/memgate.db"
"$agent" db verify --db "$work/memgate.db"
sqlite3 -header -column "$work/memgate.db" "SELECT vm, direction, trigger, decision, conversions, bytes FROM conversion_summary"
sqlite3 -header -column "$work/memgate.db" "SELECT method, path, status, client FROM api_requests"
