#!/usr/bin/env bash
# make bench-http: wrk against the agent's GET /healthz and GET /v1/conversions?limit=100
# (on a store holding 1,000,000 conversions), and against nginx returning a static 200,
# on this machine in the same run, one worker or event loop each, at 32 and 256 connections.
# Last line: RESULT http healthz_rps=<n> nginx_rps=<n> ratio=<healthz/nginx> conversions_p99_ms=<n> rss_mib=<n>
# healthz_rps and nginx_rps are the means over both connection counts; each figure is the best of three
# runs, agent and nginx interleaved, each server pinned to CPU 1 and wrk to CPU 0 (this host is a noisy
# nested VM: unpinned runs of the same server differ by 30%). The /v1/conversions runs are unpinned
# (its workers may use both cores); conversions_p99_ms is at 32 connections.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
agent=${AGENT:-$root/.build/release/memgate-agent}
seconds=${SECONDS_PER_RUN:-5}
rows=${ROWS:-1000000}
work=$(mktemp -d)
agent_pid=""; nginx_pid=""
cleanup() {
    [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

echo "store: $rows conversions"
"$agent" db migrate --db "$work/bench.db" > /dev/null
sqlite3 "$work/bench.db" <<SQL
INSERT INTO vms (vm_id, name, memory_bytes, vcpus, backend, data_ram_start, data_ram_size, initial_state, created_ns, ended_ns, final_state)
VALUES (1, 'bench', 268435456, 1, 'alias', 2097152, 266338304, 'private', 1, 2, 'stopped');
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $rows)
INSERT INTO conversions (event_id, vm_id, vcpu, requested_ns, completed_ns, gpa, size, direction, trigger, decision, reason,
                         policy_version, source, changed_bytes, discarded_bytes, guest_result)
SELECT i, 1, 0, 1700000000000000000 + i * 1000, 1700000000000000000 + i * 1000 + 500, 2097152 + (i % 4096) * 4096, 4096,
       CASE i % 2 WHEN 0 THEN 'to_shared' ELSE 'to_private' END, CASE i % 3 WHEN 0 THEN 'implicit' ELSE 'explicit' END,
       CASE i % 10 WHEN 0 THEN 'denied' ELSE 'applied' END, 'default explicit allow',
       '67eaff17ced9325a7227c2c9e6dbe92cc4dab78d6987ed5e9ae56e8cb512c667', 'emulated', 4096, 4096, 0
FROM n;
UPDATE id_watermarks SET last_id = $rows WHERE name = 'event';
SQL

token=bench-admin-0123456789abcdef
printf 'bench admin %s\n' "$token" > "$work/tokens"; chmod 600 "$work/tokens"
agent_port=$(free_port)
"$agent" serve --listen "127.0.0.1:$agent_port" --db "$work/bench.db" --token-file "$work/tokens" --log-level error \
    --run-dir "$work/run" --stop-vms-on-exit \
    > "$work/agent.out" 2> "$work/agent.err" &
agent_pid=$!

nginx_port=$(free_port)
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
error_log $work/nginx/error.log error;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        location / { default_type application/json; return 200 '{"status":"ok"}\n'; }
    }
}
CONF
/usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
nginx_pid=$!

for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$agent_port/healthz" > /dev/null 2>&1 && curl -sf "http://127.0.0.1:$nginx_port/" > /dev/null 2>&1 && break
    sleep 0.1
done

rps() { taskset -c 0 wrk -t1 -c"$1" -d"${seconds}s" "$2" | awk '/^Requests\/sec/ {print $2}'; }
max() { python3 -c "print(max($1, $2))"; }

pin() { taskset -a -p "$1" "$2" > /dev/null; }
pin 2 "$agent_pid"
for p in "$nginx_pid" $(pgrep -P "$nginx_pid"); do pin 2 "$p"; done
declare -A agent_rps nginx_rps
for c in 32 256; do
    agent_rps[$c]=0; nginx_rps[$c]=0
    for _ in 1 2 3; do
        nginx_rps[$c]=$(max "${nginx_rps[$c]}" "$(rps "$c" "http://127.0.0.1:$nginx_port/healthz")")
        agent_rps[$c]=$(max "${agent_rps[$c]}" "$(rps "$c" "http://127.0.0.1:$agent_port/healthz")")
    done
    echo "c=$c: agent healthz ${agent_rps[$c]} req/s, nginx ${nginx_rps[$c]} req/s (best of 3, pinned)"
done
pin 3 "$agent_pid"

p99=""
for c in 32 256; do
    out=$(wrk -t1 -c"$c" -d"${seconds}s" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$agent_port/v1/conversions?limit=100")
    rate=$(echo "$out" | awk '/^Requests\/sec/ {print $2}')
    p=$(echo "$out" | awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}')
    errors=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    echo "c=$c: agent /v1/conversions?limit=100 $rate req/s, p99 ${p} ms${errors:+, non-2xx $errors}"
    [ "$c" = 32 ] && p99=$p
done
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$agent_port/v1/conversions?limit=100" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert len(d["items"])==100, d' 

rss_kib=$(awk '/^VmRSS/ {print $2}' "/proc/$agent_pid/status")
python3 - "${agent_rps[32]}" "${agent_rps[256]}" "${nginx_rps[32]}" "${nginx_rps[256]}" "$p99" "$rss_kib" <<'PY'
import sys
a32, a256, n32, n256, p99, rss = map(float, sys.argv[1:])
agent = (a32 + a256) / 2
nginx = (n32 + n256) / 2
print(f"RESULT http healthz_rps={agent:.0f} nginx_rps={nginx:.0f} ratio={agent / nginx:.3f} conversions_p99_ms={p99:.2f} rss_mib={rss / 1024:.1f}")
PY
