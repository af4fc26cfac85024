#!/usr/bin/env bash
# Orchestration figures, swarmkeep beside this machine's dockerd in swarm mode
# in one run (root; release build, docker-registry, busybox-static, dockerd):
#   1. a 100-replica service converging from `service create -d` (until
#      `service ls` shows 100/100);
#   2. a 100-replica rolling update (`service update -d --force
#      --update-parallelism 10 --update-delay 0s --update-monitor 1s`, until
#      UpdateStatus is `completed`);
#   3. rescheduling 100 tasks after their node's daemon is killed (swarmkeep
#      only: one dockerd cannot be two nodes), heartbeats every second, until
#      100/100 again on the other node.
# Both sides run the same busybox image (`sleep`), with a cached image.
#
#   cargo build --release --bin swarmkeepd --bin swarmkeep
#   crates/bench/scripts/orchestration.sh [REPLICAS]
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
n=${1:-100}
rel=$here/target/release
for b in swarmkeepd swarmkeep; do
  [ -x "$rel/$b" ] || { echo "build first: cargo build --release --bin swarmkeepd --bin swarmkeep" >&2; exit 1; }
done
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && [ -x /usr/bin/docker-registry ] || { echo "needs busybox-static and docker-registry" >&2; exit 1; }

dir=$(mktemp -d /var/tmp/swarmkeep-orchbench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
reg=127.0.0.1:$(free_port)
pids=()
docker_swarm_made=0
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -f "swarmkeepd task-shim.*$dir" 2>/dev/null || true
  wait 2>/dev/null || true
  docker service rm orchbench >/dev/null 2>&1 || true
  [ "$docker_swarm_made" = 1 ] && docker swarm leave --force >/dev/null 2>&1 || true
  docker rmi -f swk-orch-base:latest >/dev/null 2>&1 || true
  for b in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | grep '^swk-' || true); do ip link del "$b" || true; done
  # The killed node's task mounts outlive it.
  for m in $(awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do umount -l "$m" || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
wait_until() { # command… ; polls every 0.2 s, at most 10 minutes
  for _ in $(seq 3000); do "$@" && return 0; sleep 0.2; done
  echo "timed out: $*" >&2; return 1
}

# The image: the host's static busybox, in a registry on loopback (swarmkeep)
# and in dockerd (Docker).
cat > "$dir/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $dir/registry}}
http: {addr: $reg, secret: bench-only}
EOF
/usr/bin/docker-registry serve "$dir/registry.yml" 2>"$dir/registry.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp"
cp "$busybox" "$dir/rootfs/bin/busybox"
for a in $("$busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$dir/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$dir/rootfs/etc/passwd"
echo 'root:x:0:' > "$dir/rootfs/etc/group"
tar -C "$dir/rootfs" -c . | docker import -c 'CMD ["sh"]' - swk-orch-base:latest >/dev/null
docker tag swk-orch-base:latest "$reg/library/busybox:latest"
docker push -q "$reg/library/busybox:latest" >/dev/null
docker rmi "$reg/library/busybox:latest" >/dev/null

# --- swarmkeep: two nodes on 127.0.0.1 and 127.0.0.2 ---
start_node() { # name addr
  mkdir -p "$dir/$1"
  "$rel/swarmkeepd" --data-dir "$dir/$1/data" -H "unix://$dir/$1/ctl.sock" --exec-root "$dir/$1/exec" \
    --hostname "$1" --log-level error --registry-mirror "http://$reg" 2>"$dir/$1/log" &
  pids+=($!)
  for _ in $(seq 200); do [ -S "$dir/$1/ctl.sock" ] && break; sleep 0.05; done
}
sk() { "$rel/swarmkeep" -H "unix://$dir/m/ctl.sock" "$@"; }
start_node m 127.0.0.1
m_addr=127.0.0.1:$(free_port)
sk swarm init --advertise-addr "$m_addr" --listen-addr "$m_addr" --dispatcher-heartbeat 1s >/dev/null
sk image pull busybox:latest >/dev/null
sk_replicas() { sk service ls --format '{{.Name}} {{.Replicas}}' | awk -v s="$1" '$1 == s {print $2}'; }
sk_state() { sk service inspect --format '{{.UpdateStatus.State}}' "$1" 2>/dev/null || true; }
sk_converged() { [ "$(sk_replicas orchbench)" = "$n/$n" ]; }
sk_completed() { [ "$(sk_state orchbench)" = completed ]; }
sk_all_ready() { [ "$(sk node ls --format '{{.Status}}' | sort -u)" = Ready ]; }
sk_w_down() { sk node ls --format '{{.Hostname}} {{.Status}}' | grep -q '^w Down'; }

t=$(now)
sk service create -d --name orchbench --replicas "$n" --stop-grace-period 1s busybox:latest sleep 1000000 >/dev/null
wait_until sk_converged
sk_create=$(secs "$t" "$(now)")
t=$(now)
sk service update -d --force --update-parallelism 10 --update-delay 0s --update-monitor 1s orchbench >/dev/null
wait_until sk_completed
sk_update=$(secs "$t" "$(now)")
sk service rm orchbench >/dev/null
sleep 3

# Rescheduling: all tasks on the worker w, then w's daemon killed.
start_node w 127.0.0.2
w_addr=127.0.0.2:$(free_port)
token=$(sk swarm join-token -q worker)
"$rel/swarmkeep" -H "unix://$dir/w/ctl.sock" swarm join --token "$token" --advertise-addr "$w_addr" \
  --listen-addr "$w_addr" "$m_addr" >/dev/null
wpid=${pids[-1]}
"$rel/swarmkeep" -H "unix://$dir/w/ctl.sock" image pull busybox:latest >/dev/null
wait_until sk_all_ready
sk node update --availability drain m >/dev/null
sk service create -d --name orchbench --replicas "$n" --stop-grace-period 1s busybox:latest sleep 1000000 >/dev/null
wait_until sk_converged
sk node update --availability active m >/dev/null
t=$(now)
kill -9 "$wpid"
# The first check may still see the old tasks: wait for w to be Down and the
# replicas to be back.
wait_until sk_w_down
wait_until sk_converged
sk_resched=$(secs "$t" "$(now)")
sk service rm orchbench >/dev/null
pkill -9 -f "swarmkeepd task-shim" 2>/dev/null || true

# --- dockerd in swarm mode, the same image and commands ---
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  docker_swarm_made=1
fi
d_replicas() { docker service ls --format '{{.Name}} {{.Replicas}}' | awk -v s="$1" '$1 == s {print $2}'; }
d_converged() { [ "$(d_replicas orchbench)" = "$n/$n" ]; }
d_completed() { [ "$(docker service inspect --format '{{.UpdateStatus.State}}' orchbench)" = completed ]; }
t=$(now)
docker service create -d --name orchbench --replicas "$n" --stop-grace-period 1s --no-resolve-image \
  swk-orch-base:latest sleep 1000000 >/dev/null
wait_until d_converged
d_create=$(secs "$t" "$(now)")
t=$(now)
docker service update -d --force --update-parallelism 10 --update-delay 0s --update-monitor 1s orchbench >/dev/null
wait_until d_completed
d_update=$(secs "$t" "$(now)")
docker service rm orchbench >/dev/null

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "replicas: $n"
echo "converge from create:   swarmkeep ${sk_create}s  dockerd ${d_create}s  ratio $(ratio "$sk_create" "$d_create")"
echo "rolling update (p=10):  swarmkeep ${sk_update}s  dockerd ${d_update}s  ratio $(ratio "$sk_update" "$d_update")"
echo "reschedule after kill:  swarmkeep ${sk_resched}s (heartbeat 1 s: down after 3 s; dockerd: not measurable on one engine)"
