"""The official Docker SDK for Python (docker-py) driving a swarmkeep daemon
through its Docker Engine API, as Ansible's swarm modules and CI scripts do.

Run by tests/tests/docker_sdk.rs:
    python3 docker_sdk.py <docker socket> <listen addr> <marker>
Every check is an assert; the first one that fails ends the run non-zero.
"""

import base64
import sys
import time

import docker
from docker.types import (
    ConfigReference,
    RollbackConfig,
    SecretReference,
    ServiceMode,
    UpdateConfig,
)

socket, listen_addr, marker = sys.argv[1], sys.argv[2], sys.argv[3]
client = docker.DockerClient(base_url="unix://" + socket, version="1.41", timeout=60)


START = time.time()


def step(what):
    print("%6.2fs %s" % (time.time() - START, what), flush=True)


def eventually(check, what, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError("never: " + what)


def running(service):
    return [t for t in service.tasks() if t["Status"]["State"] == "running"]


step('A swarm with the address pool, subnet size and data path p')
# A swarm with the address pool, subnet size and data path port given.
node_id = client.swarm.init(
    advertise_addr="127.0.0.1",
    listen_addr=listen_addr,
    default_addr_pool=["10.77.0.0/16"],
    subnet_size=26,
    data_path_port=4799,
)
client.swarm.reload()
attrs = client.swarm.attrs
assert attrs["DefaultAddrPool"] == ["10.77.0.0/16"], attrs
assert attrs["SubnetSize"] == 26, attrs
assert attrs["DataPathPort"] == 4799, attrs
assert client.info()["Swarm"]["NodeID"] == node_id

step("Secrets and configs with labels; a secret's value is never")
# Secrets and configs with labels; a secret's value is never shown.
secret = client.secrets.create(name="sdk_secret", data=marker.encode(), labels={"tier": "db"})
secret.reload()
assert secret.attrs["Spec"]["Name"] == "sdk_secret", secret.attrs
assert secret.attrs["Spec"]["Labels"] == {"tier": "db"}, secret.attrs
assert "Data" not in secret.attrs["Spec"], secret.attrs
assert [s.id for s in client.secrets.list(filters={"label": "tier=db"})] == [secret.id]
assert client.secrets.list(filters={"label": "tier=web"}) == []

config = client.configs.create(name="sdk_config", data=b"conf-data", labels={"tier": "web"})
config.reload()
assert config.attrs["Spec"]["Labels"] == {"tier": "web"}, config.attrs
assert base64.b64decode(config.attrs["Spec"]["Data"]) == b"conf-data", config.attrs
assert [c.id for c in client.configs.list(filters={"label": "tier"})] == [config.id]

step('A global service: one task on the one node.')
# A global service: one task on the one node.
glob = client.services.create(
    "bb:latest",
    command=["sleep", "100000"],
    name="sdk_global",
    mode=ServiceMode("global"),
)
glob.reload()
assert "Global" in glob.attrs["Spec"]["Mode"], glob.attrs["Spec"]["Mode"]
eventually(lambda: len(running(glob)) == 1, "the global service's task running")

step('A replicated service reading its secret and config, with r')
# A replicated service reading its secret and config, with rollout settings.
update = UpdateConfig(
    parallelism=2,
    delay=1_000_000_000,
    failure_action="rollback",
    monitor=3_000_000_000,
    max_failure_ratio=0.25,
    order="start-first",
)
rollback = RollbackConfig(parallelism=1, failure_action="pause", order="start-first")
web = client.services.create(
    "bb:latest",
    command=["sh", "-c", "wc -c < /run/secrets/pw; cat /conf; echo; sleep 100000"],
    name="sdk_web",
    mode=ServiceMode("replicated", replicas=1),
    secrets=[SecretReference(secret.id, "sdk_secret", filename="pw", mode=0o400)],
    configs=[ConfigReference(config.id, "sdk_config", filename="/conf")],
    update_config=update,
    rollback_config=rollback,
    labels={"app": "web"},
)
web.reload()
spec = web.attrs["Spec"]
assert spec["Mode"] == {"Replicated": {"Replicas": 1}}, spec["Mode"]
assert spec["Labels"] == {"app": "web"}, spec
uc = spec["UpdateConfig"]
assert (uc["Parallelism"], uc["Delay"], uc["FailureAction"], uc["Monitor"], uc["Order"]) == (
    2,
    1_000_000_000,
    "rollback",
    3_000_000_000,
    "start-first",
), uc
assert abs(uc["MaxFailureRatio"] - 0.25) < 1e-6, uc
rc = spec["RollbackConfig"]
assert (rc["Parallelism"], rc["FailureAction"], rc["Order"]) == (1, "pause", "start-first"), rc
refs = spec["TaskTemplate"]["ContainerSpec"]["Secrets"]
assert refs[0]["File"]["Name"] == "pw" and refs[0]["File"]["Mode"] == 0o400, refs
assert marker not in str(web.attrs)
eventually(lambda: len(running(web)) == 1, "the replicated service's task running")

step('scale: the SDK sends {"replicated": {"Replicas": 3}} (lowe')
# scale: the SDK sends {"replicated": {"Replicas": 3}} (lower-case key).
assert web.scale(3)
web.reload()
assert web.attrs["Spec"]["Mode"] == {"Replicated": {"Replicas": 3}}, web.attrs["Spec"]["Mode"]
eventually(lambda: len(running(web)) == 3, "three replicas running")
step('The rollout settings survive the scale (the SDK sends the ')
# The rollout settings survive the scale (the SDK sends the spec it read).
assert web.attrs["Spec"]["UpdateConfig"]["Order"] == "start-first", web.attrs["Spec"]
assert web.attrs["Spec"]["RollbackConfig"]["Order"] == "start-first", web.attrs["Spec"]

step("What a task printed: its secret's length and its config, r")
# What a task printed: its secret's length and its config, read from their files.
eventually(lambda: b"conf-data" in b"".join(web.logs(stdout=True, stderr=True)), "the task's output")
logs = b"".join(web.logs(stdout=True, stderr=True)).split()
assert str(len(marker)).encode() in logs, logs

step('A global service cannot be scaled (the SDK refuses before ')
# A global service cannot be scaled (the SDK refuses before asking).
try:
    glob.scale(2)
    raise AssertionError("a global service was scaled")
except docker.errors.InvalidArgument:
    pass

step("Errors as dockerd's.")
# Errors as dockerd's.
try:
    client.secrets.create(name="sdk_secret", data=b"x")
    raise AssertionError("a second secret of one name")
except docker.errors.APIError as e:
    assert e.status_code == 409, e
try:
    client.services.get("no-such-service")
    raise AssertionError("a service that does not exist")
except docker.errors.NotFound:
    pass

step("removing")
web.remove()
glob.remove()
eventually(lambda: client.services.list() == [], "services gone")


def remove_when_unused(obj):
    try:
        obj.remove()
        return True
    except docker.errors.APIError:
        return False


eventually(lambda: remove_when_unused(secret), "the secret removed once unused")
eventually(lambda: remove_when_unused(config), "the config removed once unused")
assert client.secrets.list() == [] and client.configs.list() == []
step("done")
print("ok")
