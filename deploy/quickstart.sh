#!/usr/bin/env bash
# One-node swarm on embedded defaults: builds the binaries, starts swarmkeepd
# in the background, runs `swarm init`, stores a secret, shows that no
# command ever prints its value, and runs a service that reads it from
# /run/secrets (the agent needs root: it mounts a tmpfs per task). Tasks run
# real images: with no internet, a registry on loopback (Debian's
# docker-registry) serves as the Docker Hub mirror, holding a busybox image
# built from busybox-static.
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
  if [ "$(id -u)" = 0 ]; then
    if ! command -v docker-registry >/dev/null || ! command -v busybox >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry busybox-static >/dev/null
    fi
    REGISTRY=127.0.0.1:5111
    mkdir -p "$DATA/registry"
    printf 'version: 0.1\nlog: { level: warn, accesslog: { disabled: true } }\nstorage: { filesystem: { rootdirectory: %s } }\nhttp: { addr: %s, secret: quickstart }\n' \
      "$DATA/registry/data" "$REGISTRY" >"$DATA/registry/config.yml"
    if ! (exec 3<>"/dev/tcp/${REGISTRY%:*}/${REGISTRY#*:}") 2>/dev/null; then
      docker-registry serve "$DATA/registry/config.yml" </dev/null >/dev/null 2>"$DATA/registry.log" &
      echo $! >"$DATA/registry.pid"
      for _ in $(seq 100); do (exec 3<>"/dev/tcp/${REGISTRY%:*}/${REGISTRY#*:}") 2>/dev/null && break; sleep 0.1; done
    fi
    "$BIN/swarmkeep-testimage" "$REGISTRY" library/busybox:latest >/dev/null
    AGENT+=(--registry-mirror "http://$REGISTRY")
  fi
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
  mkdir -p "$DATA/out"
  OUT="$DATA/out/reader.out"
  rm -f "$OUT"
  "$BIN/swarmkeep" service rm reader >/dev/null 2>&1 || true
  run service create --name reader --mount "type=bind,source=$DATA/out,target=/out" \
    --secret db_password --secret source=db_password,target=/etc/app/db.pw,uid=1000,mode=0400 \
    busybox sh -c "{ ls -ln /run/secrets /etc/app/db.pw; echo \"sha256 as the task reads it: \$(sha256sum </run/secrets/db_password)\"; } >/out/reader.out; exec sleep 1000000"
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
