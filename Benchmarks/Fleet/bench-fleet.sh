#!/usr/bin/env bash
# make bench-fleet (as root): the controller where fan-out matters and at scale.
#
# Latency: 64 agents, each in its own network namespace on a bridge, 20 ms of round trip
# away (this kernel has no sch_netem, so Benchmarks/Fleet/delay.c holds every packet
# between here and the bridge's network for 10 ms each way through NFQUEUE, handshakes
# included). `memgatectl policy push` to all 64, against the same push to one, and against
# 64 single-host pushes one after another. Medians of RUNS (5) runs; three documents
# rotate so every push changes every host.
#
# Scale: 10,000 inventory entries served by SCALE_AGENTS (4) real agents inside a network
# namespace of this benchmark's own that has only a loopback device. The agents listen on
# 0.0.0.0, so every entry http://127.x.y.z:PORT is a host and a connection of its own, and
# nothing can leave. `memgatectl hosts` and `memgatectl policy push` across all of them,
# with the controller's peak RSS and open descriptors.
#
# Last line:
# RESULT fleet rtt_ms=20 hosts=64 push_ms=<n> single_ms=<n> vs_single=<ratio> vs_sequential=<ratio> scale_hosts=10000 scale_hosts_s=<s> scale_push_s=<s> ctl_rss_mib=<n>
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
agent=${AGENT:-$root/.build/release/memgate-agent}
ctl=${CTL:-$root/.build/release/memgatectl}
delay=${DELAY:-$root/.build/bench/fleet-delay}
hosts=${HOSTS:-64}
runs=${RUNS:-5}
scale=${SCALE_HOSTS:-10000}
scale_agents=${SCALE_AGENTS:-4}
[ "$(id -u)" = 0 ] || { echo "bench-fleet: needs root (network namespaces, a bridge, NFQUEUE rules)" >&2; exit 1; }
command -v iptables-legacy >/dev/null || { echo "bench-fleet: iptables-legacy is missing (apt package iptables)" >&2; exit 1; }

work=$(mktemp -d)
tag=$(($$ % 10000))
bridge=mgfb$tag
net=10.219.$((1 + $$ % 250))
queue=$((100 + $$ % 1000))
scale_ns=mgfs$tag
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    iptables-legacy -D OUTPUT -d "$net.0/24" -j NFQUEUE --queue-num "$queue" 2>/dev/null || true
    iptables-legacy -D INPUT -s "$net.0/24" -j NFQUEUE --queue-num "$queue" 2>/dev/null || true
    for i in $(seq 0 $((hosts - 1))); do ip netns del "mgfb${tag}n$i" 2>/dev/null || true; done
    ip netns del "$scale_ns" 2>/dev/null || true
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

token=bench-fleet-0123456789abcdef
printf 'bench admin %s\n' "$token" > "$work/tokens"; chmod 600 "$work/tokens"
printf '%s' "$token" > "$work/ctl-token"
echo '{"name":"a","defaults":{"implicit":"deny"}}' > "$work/a.json"
echo '{"name":"b","defaults":{"implicit":"allow","discard":false}}' > "$work/b.json"
echo '{"name":"c","defaults":{"explicit":"deny"}}' > "$work/c.json"
documents=("$work/a.json" "$work/b.json" "$work/c.json")
now_us() { echo $(($(date +%s%N) / 1000)); }
median() { python3 -c 'import sys; v=sorted(map(float, sys.argv[1:])); print(v[len(v)//2])' "$@"; }

wait_serving() {  # out-file -> URL printed by the agent
    for _ in $(seq 600); do grep -q "serving on" "$1" 2>/dev/null && break; sleep 0.05; done
    sed -n 's/.*serving on \(http:\/\/[0-9.:]*\).*/\1/p' "$1"
}

# ---- Latency: 64 agents 20 ms away ----
if [ -n "${SCALE_ONLY:-}" ]; then hosts=0; fi
if [ "$hosts" -gt 0 ]; then
echo "starting $hosts agents in network namespaces on $bridge ($net.0/24)"
ip link add "$bridge" type bridge
ip addr add "$net.1/24" dev "$bridge"
ip link set "$bridge" up
: > "$work/hosts"
for i in $(seq 0 $((hosts - 1))); do
    ns=mgfb${tag}n$i
    ip netns add "$ns"
    ip link add "mgfb${tag}h$i" type veth peer name "mgfb${tag}i$i"
    ip link set "mgfb${tag}i$i" netns "$ns"
    ip link set "mgfb${tag}h$i" master "$bridge"
    ip link set "mgfb${tag}h$i" up
    ip netns exec "$ns" ip addr add "$net.$((10 + i))/24" dev "mgfb${tag}i$i"
    ip netns exec "$ns" ip link set "mgfb${tag}i$i" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" "$agent" serve --listen "$net.$((10 + i)):7070" --db "$work/agent$i.db" --token-file "$work/tokens" \
        --run-dir "$work/run$i" --stop-vms-on-exit --log-level error > "$work/agent$i.out" 2> "$work/agent$i.err" &
    pids+=($!)
done
for i in $(seq 0 $((hosts - 1))); do
    url=$(wait_serving "$work/agent$i.out")
    [ -n "$url" ] || { cat "$work/agent$i.err"; echo "agent $i did not start" >&2; exit 1; }
    echo "$url agent$i" >> "$work/hosts"
done
head -1 "$work/hosts" > "$work/one-host"

iptables-legacy -I OUTPUT -d "$net.0/24" -j NFQUEUE --queue-num "$queue"
iptables-legacy -I INPUT -s "$net.0/24" -j NFQUEUE --queue-num "$queue"
"$delay" "$queue" 10 > "$work/delay.out" &
pids+=($!)
for _ in $(seq 100); do grep -q ready "$work/delay.out" 2>/dev/null && break; sleep 0.05; done
rtt=$(python3 - "$net.10" <<'EOF'
import socket, sys, time
samples = []
for _ in range(5):
    start = time.time()
    socket.create_connection((sys.argv[1], 7070)).close()
    samples.append((time.time() - start) * 1000)
print(round(sorted(samples)[2], 1))
EOF
)
echo "round trip to an agent: $rtt ms (a TCP connect)"

push() {  # hosts-file document -> milliseconds; fails unless every host applied it
    local start end
    start=$(now_us)
    "$ctl" policy push "$2" --hosts "$1" --token-file "$work/ctl-token" --json > "$work/push.json" 2> "$work/push.err"
    end=$(now_us)
    python3 -c "import json,sys; rows=json.load(open('$work/push.json'))['hosts']; sys.exit(0 if all(r['result']=='applied' for r in rows) else 1)" \
        || { cat "$work/push.json" "$work/push.err"; exit 1; }
    python3 -c "print(($end - $start) / 1000)"
}

sequential() {  # document -> milliseconds for a single-host push to each host, one after another
    local start end
    start=$(now_us)
    while read -r url _; do
        "$ctl" policy push "$1" --host "$url" --token-file "$work/ctl-token" --json > /dev/null 2>&1
    done < "$work/hosts"
    end=$(now_us)
    python3 -c "print(($end - $start) / 1000)"
}

fan=(); single=(); seq_ms=()
for run in $(seq 1 "$runs"); do
    fan+=("$(push "$work/hosts" "${documents[$((run % 3))]}")")
    single+=("$(push "$work/one-host" "${documents[$(((run + 1) % 3))]}")")
    seq_ms+=("$(sequential "${documents[$(((run + 2) % 3))]}")")
    echo "run $run: push to $hosts ${fan[-1]} ms, push to 1 ${single[-1]} ms, $hosts single pushes one after another ${seq_ms[-1]} ms"
done
p=$(median "${fan[@]}"); s=$(median "${single[@]}"); q=$(median "${seq_ms[@]}")
else p=0; s=1; q=1; fi

# ---- Scale: 10,000 entries on a loopback-only namespace ----
echo "starting $scale_agents agents in $scale_ns (loopback only) for $scale inventory entries"
ip netns add "$scale_ns"
ip netns exec "$scale_ns" ip link set lo up
for k in $(seq 0 $((scale_agents - 1))); do
    ip netns exec "$scale_ns" bash -c "ulimit -n 65536; exec \"\$0\" \"\$@\"" "$agent" serve --listen "0.0.0.0:$((7100 + k))" \
        --db "$work/scale$k.db" --token-file "$work/tokens" --max-connections 30000 --max-connections-per-peer 30000 \
        --run-dir "$work/scalerun$k" --stop-vms-on-exit --log-level error > "$work/scale$k.out" 2> "$work/scale$k.err" &
    pids+=($!)
done
for k in $(seq 0 $((scale_agents - 1))); do
    [ -n "$(wait_serving "$work/scale$k.out")" ] || { cat "$work/scale$k.err"; echo "scale agent $k did not start" >&2; exit 1; }
done
python3 - "$scale" "$scale_agents" > "$work/scale-hosts" <<'EOF'
import sys
count, agents = int(sys.argv[1]), int(sys.argv[2])
for i in range(count):
    print(f"http://127.{1 + i // 62500}.{(i // 250) % 250}.{i % 250 + 1}:{7100 + i % agents} h{i}")
EOF

measure() {  # label command... -> "seconds rss_mib fds" of the command run inside the namespace
    ip netns exec "$scale_ns" python3 - "$@" <<'EOF'
import os, resource, subprocess, sys, time
start = time.time()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
peak_fds = 0
out_chunks = []
import threading
def drain(stream, sink):
    for chunk in iter(lambda: stream.read(65536), b""): sink.append(chunk)
errors = []
readers = [threading.Thread(target=drain, args=(child.stdout, out_chunks)), threading.Thread(target=drain, args=(child.stderr, errors))]
for reader in readers: reader.start()
while child.poll() is None:
    try: peak_fds = max(peak_fds, len(os.listdir(f"/proc/{child.pid}/fd")))
    except OSError: pass
    time.sleep(0.02)
for reader in readers: reader.join()
seconds = time.time() - start
rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
open("/dev/shm/bench-fleet-last.json", "wb").write(b"".join(out_chunks))
sys.stderr.write(b"".join(errors).decode(errors="replace")[-2000:])
print(f"{seconds:.2f} {rss_mib:.1f} {peak_fds} {child.returncode}")
EOF
}

read -r hosts_s hosts_rss hosts_fds hosts_rc < <(measure "$ctl" hosts --hosts "$work/scale-hosts" --token-file "$work/ctl-token" --json)
reachable=$(python3 -c "import json; print(sum(1 for h in json.load(open('/dev/shm/bench-fleet-last.json'))['hosts'] if h['reachable']))")
echo "memgatectl hosts across $scale entries: $hosts_s s, $reachable reachable, peak RSS $hosts_rss MiB, peak $hosts_fds descriptors (exit $hosts_rc)"
[ "$reachable" = "$scale" ] || { echo "bench-fleet: only $reachable of $scale hosts answered" >&2; exit 1; }
read -r push_s push_rss push_fds push_rc < <(measure "$ctl" policy push "$work/a.json" --hosts "$work/scale-hosts" --token-file "$work/ctl-token" --json)
pushed=$(python3 -c "import json; rows=json.load(open('/dev/shm/bench-fleet-last.json'))['hosts']; print(sum(1 for r in rows if r['result'] in ('applied','unchanged')))")
echo "memgatectl policy push across $scale entries: $push_s s, $pushed applied or unchanged, peak RSS $push_rss MiB, peak $push_fds descriptors (exit $push_rc)"
[ "$pushed" = "$scale" ] || { echo "bench-fleet: the push reached only $pushed of $scale hosts" >&2; exit 1; }
rm -f /dev/shm/bench-fleet-last.json
rss=$(python3 -c "print(max($hosts_rss, $push_rss))")

python3 -c "print(f'RESULT fleet rtt_ms=20 hosts=$hosts push_ms={$p:.1f} single_ms={$s:.1f} vs_single={$p/$s:.2f} vs_sequential={$p/$q:.3f} scale_hosts=$scale scale_hosts_s=$hosts_s scale_push_s=$push_s ctl_rss_mib={$rss:.0f}')" \
    | tee -a "$root/.build/bench/results.txt"
