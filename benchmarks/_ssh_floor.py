"""The floor of bench_ssh.py: what a hand-written docker-py script over SSH tunnels does, no graphium.

    python benchmarks/_ssh_floor.py up|check|down SPEC.json

Run as a subprocess by bench_ssh.py, so that its wall time and CPU are measured exactly as a
``graphium-run`` process's are (interpreter start-up and imports included). It opens one SSH
connection per host (asyncssh, keys verified against the lab's known_hosts, as graphium does),
forwards the host's Docker socket to a local unix socket, and drives the engine with docker-py's
``APIClient``, hosts in parallel (one thread each), each host sequentially:

* ``up``: create the stack's network, then create + start each container (same name, image,
  environment, labels, network alias and restart policy as graphium's), without waiting for it;
* ``check`` (the deep no-op): inspect every container and confirm it is as wanted (running, image,
  labels, environment, alias on the network), exit 1 if not;
* ``down``: remove every container (forced) and the network.

Prints one JSON line: ``{"action", "seconds", "cpu_seconds"}`` (from before the SSH connects to
the end: its time, and its own user+sys CPU).
Imports only asyncssh and docker: nothing of graphium.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncssh
import docker


def _up(client: docker.APIClient, host: dict[str, Any], spec: dict[str, Any]) -> None:
    network = spec["network"]
    client.create_network(network, driver="bridge", labels=spec["network_labels"])
    for c in host["containers"]:
        created = client.create_container(
            image=c["image"],
            name=c["name"],
            environment=c["env"],
            labels=c["labels"],
            host_config=client.create_host_config(network_mode=network, restart_policy={"Name": "no"}),
            networking_config=client.create_networking_config(
                {network: client.create_endpoint_config(aliases=[c["alias"]])}
            ),
        )
        client.start(created["Id"])


def _check(client: docker.APIClient, host: dict[str, Any], spec: dict[str, Any]) -> None:
    network = spec["network"]
    for c in host["containers"]:
        info = client.inspect_container(c["name"])
        labels = info["Config"]["Labels"] or {}
        endpoint = (info["NetworkSettings"]["Networks"] or {}).get(network) or {}
        problems = [
            what
            for what, ok in (
                ("not running", info["State"]["Running"]),
                ("image", info["Config"]["Image"] == c["image"]),
                ("labels", all(labels.get(k) == v for k, v in c["labels"].items())),
                ("environment", set(c["env"]) <= set(info["Config"]["Env"] or [])),
                ("alias", c["alias"] in (endpoint.get("Aliases") or [])),
            )
            if not ok
        ]
        if problems:
            raise SystemExit(f"{host['id']}: {c['name']}: {', '.join(problems)}")


def _down(client: docker.APIClient, host: dict[str, Any], spec: dict[str, Any]) -> None:
    for c in host["containers"]:
        client.remove_container(c["name"], force=True)
    client.remove_network(spec["network"])


ACTIONS = {"up": _up, "check": _check, "down": _down}


async def _tunnel(host: dict[str, Any], local: str) -> tuple[asyncssh.SSHClientConnection, Any]:
    conn = await asyncssh.connect(
        host["address"],
        username=host["user"],
        client_keys=[host["key"]],
        known_hosts=host["known_hosts"],
    )
    listener = await conn.forward_local_path(local, host["docker_sock"])
    return conn, listener


def _drive(action: str, url: str, host: dict[str, Any], spec: dict[str, Any]) -> None:
    client = docker.APIClient(base_url=url, version="1.41")
    try:
        ACTIONS[action](client, host, spec)
    finally:
        client.close()


async def run(action: str, spec: dict[str, Any]) -> float:
    hosts = spec["hosts"]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="floor-") as tmp:
        locals_ = [os.path.join(tmp, f"{i}.sock") for i in range(len(hosts))]
        tunnels = await asyncio.gather(*(_tunnel(h, p) for h, p in zip(hosts, locals_, strict=True)))
        try:
            loop = asyncio.get_running_loop()
            with ThreadPoolExecutor(len(hosts)) as pool:
                await asyncio.gather(
                    *(
                        loop.run_in_executor(pool, _drive, action, f"unix://{p}", h, spec)
                        for h, p in zip(hosts, locals_, strict=True)
                    )
                )
        finally:
            for conn, listener in tunnels:
                listener.close()
                conn.close()
            await asyncio.gather(*(conn.wait_closed() for conn, _ in tunnels))
    return time.perf_counter() - started


def main() -> None:
    action, spec_path = sys.argv[1], sys.argv[2]
    if action not in ACTIONS:
        raise SystemExit(f"usage: {sys.argv[0]} up|check|down SPEC.json")
    spec = json.loads(Path(spec_path).read_text())
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = asyncio.run(run(action, spec))
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(json.dumps({"action": action, "seconds": seconds, "cpu_seconds": cpu}), flush=True)


if __name__ == "__main__":
    main()
