#!/usr/bin/env bash
# The task runtime's figures, side by side with this machine's dockerd in one
# run (root; needs the release build, docker-registry, busybox-static and a
# local dockerd):
#   1. pull of a 4-layer image (busybox + 3 × 16 MiB) from a registry on
#      loopback, cold each time: `swarmkeep image pull` vs `docker pull`,
#      alternating, RUNS times each; medians and their ratio;
#   2. `service create` → its task has read its secret (swarmkeep-bench
#      --services, busybox cached after the first, full sandbox);
#   3. memory (PSS) with 100 running tasks: swarmkeepd (manager + agent) and
#      the task shims.
#
#   cargo build --release --bin swarmkeepd --bin swarmkeep --bin swarmkeep-bench
#   crates/bench/scripts/runtime.sh [RUNS] [SERVICES]
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
runs=${1:-3}
services=${2:-50}
rel=$here/target/release
for b in swarmkeepd swarmkeep swarmkeep-bench; do
  [ -x "$rel/$b" ] || { echo "build first: cargo build --release --bin swarmkeepd --bin swarmkeep --bin swarmkeep-bench" >&2; exit 1; }
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && [ -x /usr/bin/docker-registry ] || { echo "needs busybox-static and docker-registry" >&2; exit 1; }

dir=$(mktemp -d /var/tmp/swarmkeep-rtbench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
reg=127.0.0.1:$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  docker rmi -f "$reg/bench/multi:v1" "$reg/library/busybox:latest" swk-bench-base:latest >/dev/null 2>&1 || true
  for b in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | grep '^swk-' || true); do ip link del "$b" || true; done
  rm -rf "$dir"
}
trap cleanup EXIT

# A registry on loopback (dockerd trusts 127.0.0.0/8 over plain HTTP).
cat > "$dir/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/registry}, delete: {enabled: true}}
http: {addr: $reg, secret: bench-only}
EOF
/usr/bin/docker-registry serve "$dir/registry.yml" 2>"$dir/registry.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done

# The images, built by the local dockerd from the host's static busybox.
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/ctx"
cp "$busybox" "$dir/rootfs/bin/busybox"
for a in $("$busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$dir/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
tar -C "$dir/rootfs" -c . | docker import -c 'CMD ["sh"]' - swk-bench-base:latest >/dev/null
cat > "$dir/ctx/Dockerfile" <<'EOF'
FROM swk-bench-base:latest
RUN head -c 16777216 /dev/urandom > /layer1
RUN head -c 16777216 /dev/urandom > /layer2
RUN head -c 16777216 /dev/urandom > /layer3
EOF
DOCKER_BUILDKIT=0 docker build -q -t "$reg/bench/multi:v1" "$dir/ctx" >/dev/null 2>"$dir/build.log"
docker tag swk-bench-base:latest "$reg/library/busybox:latest"
docker push -q "$reg/bench/multi:v1" >/dev/null
docker push -q "$reg/library/busybox:latest" >/dev/null
# Nothing of them left in dockerd: its pulls start cold.
docker rmi -f "$reg/bench/multi:v1" "$reg/library/busybox:latest" swk-bench-base:latest >/dev/null
docker image prune -f >/dev/null

# One swarmkeep node.
host="unix://$dir/ctl.sock"
"$rel/swarmkeepd" --data-dir "$dir/data" -H "$host" --exec-root "$dir/exec" --log-level error \
  --registry-mirror "http://$reg" 2>"$dir/swarmkeepd.log" &
daemon=$!
pids+=($daemon)
for _ in $(seq 200); do [ -S "$dir/ctl.sock" ] && break; sleep 0.05; done
cluster=127.0.0.1:$(free_port)
"$rel/swarmkeep" -H "$host" swarm init --advertise-addr "$cluster" --listen-addr "$cluster" >/dev/null

ours=(); theirs=()
for i in $(seq "$runs"); do
  t=$(date +%s%N); "$rel/swarmkeep" -H "$host" image pull "$reg/bench/multi:v1" >/dev/null
  ours+=("$(( $(date +%s%N) - t ))")
  "$rel/swarmkeep" -H "$host" image rm "$reg/bench/multi:v1" >/dev/null
  t=$(date +%s%N); docker pull -q "$reg/bench/multi:v1" >/dev/null
  theirs+=("$(( $(date +%s%N) - t ))")
  docker rmi -f "$reg/bench/multi:v1" >/dev/null
done

# 100 running tasks: the daemon's and the shims' memory.
"$rel/swarmkeep" -H "$host" service create -d --name rss --replicas 100 busybox sleep 1000000 >/dev/null
for _ in $(seq 600); do
  running=$("$rel/swarmkeep" -H "$host" service ls --format '{{.Replicas}}' | head -1)
  [ "$running" = "100/100" ] && break
  sleep 0.5
done
sleep 2
# PSS: shared pages (the daemon's binary, mapped by every shim) counted once.
pss_kb() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
daemon_kb=$(pss_kb "$daemon")
shims=$(pgrep -f 'swarmkeepd task-shim' || true)
shim_kb=0; nshims=0
for p in $shims; do shim_kb=$((shim_kb + $(pss_kb "$p"))); nshims=$((nshims + 1)); done
one=$(echo "$shims" | head -1)
ps -o pid,ppid,rss,args --ppid "$one" -p "$one" >&2 || true
"$rel/swarmkeep" -H "$host" service rm rss >/dev/null
kill "$daemon"; wait "$daemon" 2>/dev/null || true

# service create → secret read (its own daemon; busybox from the registry).
echo "pulls (ns): swarmkeep ${ours[*]} / dockerd ${theirs[*]}; pss kB: daemon $daemon_kb, $nshims shims $shim_kb" >&2
delivery=$("$rel/swarmkeep-bench" --services "$services" --registry-mirror "http://$reg")

python3 - "${ours[*]}" "${theirs[*]}" "$daemon_kb" "$shim_kb" "$nshims" "$running" "$delivery" <<'PY'
import json, statistics, sys
ours = [int(x) / 1e9 for x in sys.argv[1].split()]
theirs = [int(x) / 1e9 for x in sys.argv[2].split()]
mo, mt = statistics.median(ours), statistics.median(theirs)
delivery = json.loads(sys.argv[7])
print(json.dumps({
    "pull_4_layers_48MiB_swarmkeep_s": [round(x, 3) for x in ours],
    "pull_4_layers_48MiB_dockerd_s": [round(x, 3) for x in theirs],
    "pull_median_ratio_swarmkeep_over_dockerd": round(mo / mt, 3),
    "tasks_running": sys.argv[6],
    "swarmkeepd_pss_mib_100_tasks": round(int(sys.argv[3]) / 1024, 1),
    "task_shim_processes": int(sys.argv[5]),
    "task_shims_pss_mib_total": round(int(sys.argv[4]) / 1024, 1),
    **delivery,
}))
PY
