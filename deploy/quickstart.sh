#!/usr/bin/env bash
# One-node swarm on embedded defaults: builds the binaries, starts swarmkeepd
# in the background, runs `swarm init`, stores a secret, shows that no
# command ever prints its value, and runs a service that reads it from
# /run/secrets (the agent needs root: it mounts a tmpfs per task).
#
#   ./deploy/quickstart.sh            # data in $SWARMKEEP_DATA (default /tmp/swarmkeep-quickstart)
#   kill "$(cat /tmp/swarmkeep-quickstart/swarmkeepd.pid)"   # stop it
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${SWARMKEEP_DATA:-/tmp/swarmkeep-quickstart}
export SWARMKEEP_HOST=${SWARMKEEP_HOST:-unix://$DATA/swarmkeep.sock}
mkdir -p "$DATA"

cargo build --release --bins
BIN=target/release

if [ -f "$DATA/swarmkeepd.pid" ] && kill -0 "$(cat "$DATA/swarmkeepd.pid")" 2>/dev/null; then
  echo "swarmkeepd already running (pid $(cat "$DATA/swarmkeepd.pid"))"
else
  rm -f "${SWARMKEEP_HOST#unix://}"
  AGENT=(--exec-root "$DATA/exec")
  if [ "$(id -u)" != 0 ]; then
    echo "note: not root, so no agent (tasks need a mount namespace and a tmpfs); run as root to see a service read its secret"
    AGENT=(--no-agent)
  fi
  "$BIN/swarmkeepd" --data-dir "$DATA/data" -H "$SWARMKEEP_HOST" --docker-api "unix://$DATA/docker.sock" "${AGENT[@]}" \
    </dev/null >/dev/null 2>"$DATA/swarmkeepd.log" &
  echo $! >"$DATA/swarmkeepd.pid"
  for _ in $(seq 100); do [ -S "${SWARMKEEP_HOST#unix://}" ] && break; sleep 0.1; done
fi

run() { echo "\$ swarmkeep $*"; "$BIN/swarmkeep" "$@"; }
run swarm init --advertise-addr 127.0.0.1 || true   # a second run finds the swarm already there
run node ls
echo "\$ printf 's3cr3t-value' | swarmkeep secret create db_password -"
printf 's3cr3t-value' | "$BIN/swarmkeep" secret create db_password - || true
run secret ls
run secret inspect db_password
if [ "$(id -u)" = 0 ]; then
  OUT="$DATA/reader.out"
  rm -f "$OUT"
  "$BIN/swarmkeep" service rm reader >/dev/null 2>&1 || true
  run service create --name reader --secret db_password --secret source=db_password,target=/etc/app/db.pw,uid=1000,mode=0400 \
    busybox sh -c "{ ls -ln /run/secrets /etc/app/db.pw; echo \"sha256 as the task reads it: \$(sha256sum </run/secrets/db_password)\"; } >$OUT; exec sleep 1000000"
  for _ in $(seq 100); do [ -s "$OUT" ] && break; sleep 0.1; done
  run service ls
  run service ps reader
  echo "\$ cat $OUT     # what the task saw (not the value: its sha256)"
  cat "$OUT"
  echo "sha256 of the value created above:     $(printf 's3cr3t-value' | sha256sum)"
fi
if command -v docker >/dev/null; then
  echo "\$ DOCKER_HOST=unix://$DATA/docker.sock docker secret ls     # the unmodified docker CLI, through --docker-api"
  DOCKER_HOST="unix://$DATA/docker.sock" DOCKER_CONFIG="$DATA/docker-config" docker secret ls
fi
echo
echo "swarmkeepd runs in the background (pid $(cat "$DATA/swarmkeepd.pid"), log $DATA/swarmkeepd.log)."
echo "Use it with: export SWARMKEEP_HOST=$SWARMKEEP_HOST; $BIN/swarmkeep secret ls"
echo "or with docker: export DOCKER_HOST=unix://$DATA/docker.sock; docker service ls"
