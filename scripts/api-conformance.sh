#!/usr/bin/env bash
# Starts a real agent with images, tokens and a store in a temporary directory,
# runs schemathesis against it with openapi.yaml (every operation, with a token),
# then stops the agent with SIGTERM. Fails on any 5xx or nonconforming response.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${VENV:-$root/.build/venv}
agent=$root/.build/debug/memgate-agent
examples=${EXAMPLES:-25}
work=$(mktemp -d)
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/images"
cp "$root/.build/guests/hello.elf" "$root/.build/guests/implicit.elf" "$work/images/"
secret=schemathesis-admin-$RANDOM$RANDOM$RANDOM
printf 'fuzzer admin %s\n' "$secret" > "$work/tokens"
chmod 600 "$work/tokens"
"$agent" serve --listen 127.0.0.1:0 --db "$work/agent.db" --images-dir "$work/images" --token-file "$work/tokens" \
    --run-dir "$work/run" --stop-vms-on-exit \
    > "$work/agent.out" 2> "$work/agent.err" &
pid=$!
for _ in $(seq 100); do grep -q "serving on" "$work/agent.out" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/agent.out")
[ -n "$port" ] || { cat "$work/agent.err"; echo "agent did not start" >&2; exit 1; }
# A VM to find, so operations on /v1/vms/{id} also meet an existing one.
curl -sf -H "Authorization: Bearer $secret" -H 'Content-Type: application/json' \
    -d '{"name":"conformance","image":"implicit.elf","memory_mib":16}' "http://127.0.0.1:$port/v1/vms" > /dev/null
# The event stream never ends by design; the Swift tests read it with real SSE clients instead.
"$venv/bin/st" run "$root/openapi.yaml" --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $secret" --exclude-operation-id streamEvents \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-examples "$examples" --seed 1 --request-timeout 20 \
    --generation-database none --no-color --warnings off
kill -TERM $pid
wait $pid
status=$?
grep -q "every VM ended and recorded" "$work/agent.err" || { cat "$work/agent.err"; exit 1; }
exit $status
