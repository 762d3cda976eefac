#!/usr/bin/env bash
# make bench-fanout: `memgatectl policy push` to 64 agent processes on loopback, against
# (a) the same push to one agent and (b) a shell loop of sequential curl calls making the
# same requests (GET the ETag, POST the dry run, PUT with If-Match) host after host.
# Every push changes the policy (three documents rotate). Figures are medians of 5 runs.
# Last line: RESULT fanout hosts=64 push_ms=<n> single_ms=<n> sequential_ms=<n> vs_single=<push/single> speedup=<sequential/push>
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
agent=${AGENT:-$root/.build/release/memgate-agent}
ctl=${CTL:-$root/.build/release/memgatectl}
hosts=${HOSTS:-64}
runs=${RUNS:-5}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

token=bench-fanout-0123456789abcdef
printf 'bench admin %s\n' "$token" > "$work/tokens"; chmod 600 "$work/tokens"
printf '%s' "$token" > "$work/ctl-token"
echo "starting $hosts agents"
for i in $(seq 1 "$hosts"); do
    "$agent" serve --listen 127.0.0.1:0 --db "$work/agent$i.db" --token-file "$work/tokens" --log-level error \
        --run-dir "$work/run$i" --stop-vms-on-exit \
        > "$work/agent$i.out" 2> "$work/agent$i.err" &
    pids+=($!)
done
: > "$work/hosts"
for i in $(seq 1 "$hosts"); do
    for _ in $(seq 300); do grep -q "serving on" "$work/agent$i.out" 2>/dev/null && break; sleep 0.05; done
    url=$(sed -n 's/.*serving on \(http:\/\/[0-9.:]*\).*/\1/p' "$work/agent$i.out")
    [ -n "$url" ] || { cat "$work/agent$i.err"; echo "agent $i did not start" >&2; exit 1; }
    echo "$url agent$i" >> "$work/hosts"
done
head -1 "$work/hosts" > "$work/one-host"
echo '{"defaults":{"implicit":"deny"}}' > "$work/a.json"
echo '{"defaults":{"implicit":"allow","discard":false}}' > "$work/b.json"
echo '{"defaults":{"explicit":"deny"}}' > "$work/c.json"

now_us() { echo $(($(date +%s%N) / 1000)); }
median() { python3 -c 'import sys; v=sorted(map(float, sys.argv[1:])); print(v[len(v)//2])' "$@"; }

push() {  # hosts-file document -> milliseconds; fails unless every host applied it
    local start end
    start=$(now_us)
    "$ctl" policy push "$2" --hosts "$1" --token-file "$work/ctl-token" --json > "$work/push.json"
    end=$(now_us)
    python3 -c "import json,sys; rows=json.load(open('$work/push.json'))['hosts']; sys.exit(0 if all(r['result']=='applied' for r in rows) else 1)" \
        || { cat "$work/push.json"; exit 1; }
    python3 -c "print(($end - $start) / 1000)"
}

sequential() {  # document -> milliseconds for the same three requests per host, one curl after another
    local start end body
    body=$(cat "$1")
    start=$(now_us)
    while read -r url _; do
        etag=$(curl -sS -D - -o /dev/null -H "Authorization: Bearer $token" "$url/v1/policy" | sed -n 's/^[Ee][Tt]ag: //p' | tr -d '\r')
        curl -sS -o /dev/null -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$body" "$url/v1/policy/validate"
        curl -sS -f -o /dev/null -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -H "If-Match: $etag" \
            -d "$body" "$url/v1/policy"
    done < "$work/hosts"
    end=$(now_us)
    python3 -c "print(($end - $start) / 1000)"
}

fan=(); single=(); seq_ms=()
# Three documents in rotation, so that every push changes every host's policy (versions
# hash the canonical form: the same document sent by curl is not a change).
documents=("$work/a.json" "$work/b.json" "$work/c.json")
for run in $(seq 1 "$runs"); do
    fan+=("$(push "$work/hosts" "${documents[$((run % 3))]}")")
    single+=("$(push "$work/one-host" "${documents[$(((run + 1) % 3))]}")")
    seq_ms+=("$(sequential "${documents[$(((run + 2) % 3))]}")")
    echo "run $run: push to $hosts ${fan[-1]} ms, push to 1 ${single[-1]} ms, sequential curl ${seq_ms[-1]} ms"
done
p=$(median "${fan[@]}"); s=$(median "${single[@]}"); q=$(median "${seq_ms[@]}")
python3 -c "print(f'RESULT fanout hosts=$hosts push_ms={$p:.1f} single_ms={$s:.1f} sequential_ms={$q:.1f} vs_single={$p/$s:.2f} speedup={$q/$p:.1f}')"
