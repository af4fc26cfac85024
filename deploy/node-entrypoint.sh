#!/bin/sh
# A swarmkeep node in a container (see deploy/compose.yml). ROLE=init makes
# a new swarm and publishes its join tokens in /shared; ROLE=manager|worker
# waits for them and joins the manager at $JOIN_ADDR.
set -e
ADDR="$(hostname -i | cut -d' ' -f1):2377"
export SWARMKEEP_HOST=unix:///run/swarmkeep/swarmkeep.sock
swarmkeepd --hostname "$(hostname)" &
daemon=$!
while [ ! -S /run/swarmkeep/swarmkeep.sock ]; do sleep 0.1; done

if [ ! -f /var/lib/swarmkeep/state.json ]; then
  case "$ROLE" in
    init)
      swarmkeep swarm init --advertise-addr "$ADDR" --listen-addr "$ADDR"
      swarmkeep swarm join-token -q manager >/shared/manager.token.tmp && mv /shared/manager.token.tmp /shared/manager.token
      swarmkeep swarm join-token -q worker >/shared/worker.token.tmp && mv /shared/worker.token.tmp /shared/worker.token
      ;;
    manager | worker)
      while [ ! -f "/shared/$ROLE.token" ]; do sleep 0.2; done
      until swarmkeep swarm join --token "$(cat "/shared/$ROLE.token")" \
        --advertise-addr "$ADDR" --listen-addr "$ADDR" "$JOIN_ADDR"; do sleep 1; done
      ;;
  esac
fi
wait "$daemon"
