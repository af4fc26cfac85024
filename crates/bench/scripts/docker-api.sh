#!/usr/bin/env bash
# The shared Docker-API benchmark (api_bench.py: secret create/list/inspect/
# delete over the Engine API) against swarmkeepd's --docker-api and, in the
# same run, against this machine's dockerd in swarm mode; prints both figure
# lines and their ratios, and each side's client ceiling (client_ceiling.py:
# the same client against a request refused before the store), which bounds
# what api_bench.py can report on this machine whatever the server.
#
#   crates/bench/scripts/docker-api.sh [path/to/api_bench.py] [extra api_bench args…]
#
# Needs a release build (cargo build --release --bin swarmkeepd). dockerd is
# put in swarm mode only if it is not in one, and taken out again afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")/../../.." && pwd)
bench=${1:-$here/../shared/bench/api_bench.py}
shift || true
daemon=$here/target/release/swarmkeepd
[ -x "$daemon" ] || { echo "build first: cargo build --release --bin swarmkeepd" >&2; exit 1; }
[ -f "$bench" ] || { echo "no benchmark script at $bench" >&2; exit 1; }

dir=$(mktemp -d /tmp/swarmkeep-apibench.XXXXXX)
# Both daemons are driven over a unix socket, as the docker CLI drives dockerd.
api="unix://$dir/docker.sock"
cluster=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$daemon" --data-dir "$dir/data" -H "unix://$dir/ctl.sock" --docker-api "$api" \
  --no-agent --log-level warn 2>"$dir/log" &
pid=$!
ours_swarm_left=0
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ "$ours_swarm_left" = 1 ]; then docker swarm leave --force >/dev/null 2>&1 || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$dir/ctl.sock" ] && [ -S "$dir/docker.sock" ] && break; sleep 0.05; done
DOCKER_HOST="$api" DOCKER_CONFIG="$dir/dcfg" \
  docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$cluster" >/dev/null

echo "swarmkeep:" >&2
ours=$(python3 "$bench" --host "$api" "$@")
echo "$ours"
conc=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["conc"])' "$ours")
python3 "$here/crates/bench/scripts/client_ceiling.py" --bench "$bench" --host "$api" --conc "$conc"

theirs=""
if docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null | grep -q inactive; then
  docker swarm init --advertise-addr 127.0.0.1 >/dev/null
  ours_swarm_left=1
fi
if docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null | grep -q true; then
  echo "dockerd (swarm mode):" >&2
  theirs=$(python3 "$bench" --host unix:///var/run/docker.sock "$@")
  echo "$theirs"
  python3 "$here/crates/bench/scripts/client_ceiling.py" --bench "$bench" --host unix:///var/run/docker.sock --conc "$conc"
else
  echo "no local dockerd manager to compare with" >&2
fi

if [ -n "$theirs" ]; then
  python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("ratio swarmkeep/dockerd (throughput: >1 is faster; latency: <1 is faster)")
for k in ["create_ops_s", "create_p50_ms", "create_p99_ms", "list_ms", "inspect_p50_ms", "delete_p50_ms"]:
    if a.get(k) and b.get(k):
        print(f"  {k:16} {a[k]:>10} {b[k]:>10}  ratio {a[k] / b[k]:.2f}")
PY
fi
