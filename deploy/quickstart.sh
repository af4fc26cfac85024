#!/usr/bin/env bash
# One-node swarm on embedded defaults: builds the binaries, starts swarmkeepd
# in the background, runs `swarm init`, stores a secret and shows that no
# command ever prints its value.
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
  "$BIN/swarmkeepd" --data-dir "$DATA/data" -H "$SWARMKEEP_HOST" </dev/null >/dev/null 2>"$DATA/swarmkeepd.log" &
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
echo
echo "swarmkeepd runs in the background (pid $(cat "$DATA/swarmkeepd.pid"), log $DATA/swarmkeepd.log)."
echo "Use it with: export SWARMKEEP_HOST=$SWARMKEEP_HOST; $BIN/swarmkeep secret ls"
