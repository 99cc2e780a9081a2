"""The issue's headline scenario with real processes, over the lab's bridge.

``graphium-run serve`` listens on the lab bridge address; one ``graphium-run agent`` runs inside
each lab host's network namespace with that host's engine, reaching the server only over the
bridge (as a host behind NAT would: outbound HTTP only). The multi-host nginx stack is deployed
and deleted through them while the event stream is watched, under a name and on host ports of its
own, so whatever else runs on the lab (``make demo``'s nginx-multihost, other sessions) is no concern.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from graphium.store.json_store import JsonTaskStore
from lab import LabInfo
from tests.integration.server_fixture import RUNNER, ServerProcess
from tests.support import (
    http_get,
    remove_stack,
    stack_containers,
    stack_node,
    stop_processes,
    unique_name,
    wait_for,
    with_own_name_and_ports,
)

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
STACK_FILE = REPO / "tests" / "data" / "stacks" / "upstream" / "nginx-multihost-stack.json"


class EventWatcher:
    """Reads GET /events (server-sent events) on a thread, keeping every event in order."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.events: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), f"event stream did not open: {self.error}"

    def _read(self) -> None:
        timeout = httpx.Timeout(10.0, read=None)
        try:
            with (
                httpx.Client(
                    base_url=self.server.url,
                    headers=self.server.admin_headers,
                    timeout=timeout,
                    verify=self.server.verify,
                ) as c,
                c.stream("GET", "/api/v1/events") as response,
            ):
                response.raise_for_status()
                self._ready.set()
                kind: str | None = None
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data = json.loads(line[5:].strip())
                        if isinstance(data, dict):
                            data.setdefault("type", kind)
                            self.events.append(data)
                    elif not line:
                        kind = None
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    def types(self, stack_id: str | None = None) -> list[str]:
        return [
            str(e.get("type"))
            for e in list(self.events)
            if stack_id is None or e.get("stackId") in (None, stack_id)
        ]

    def wait_for(self, kind: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while kind not in self.types():
            if "stack_failed" in self.types():
                raise AssertionError(f"stack failed while waiting for {kind}: {self.failures()}")
            assert time.monotonic() < deadline, f"no {kind} event after {timeout}s; saw {self.types()}"
            time.sleep(0.05)

    def failures(self) -> list[str]:
        """Why tasks failed, as the server tells it."""
        with self.server.admin() as admin:
            tasks = admin.get("/tasks", params={"status": "failed"}).json()
        return [f"{t['id']} ({t['taskType']} on {t['hostId']}): {t.get('error')}" for t in tasks]

    def close(self) -> None:
        self._stop.set()


def start_agent(server: ServerProcess, lab: LabInfo, host_id: str, log_dir: Path) -> subprocess.Popen[bytes]:
    """``graphium-run agent`` inside the host's network namespace, with that host's engine."""
    host = lab.host(host_id)
    env = {
        **os.environ,
        "DOCKER_HOST": host.docker_url,
        "GRAPHIUM_AGENT_TOKEN": server.agent_tokens[host_id],
        "PYTHONPATH": str(REPO),
    }
    cmd = [
        "nsenter",
        f"--net=/run/netns/{host.netns}",
        *RUNNER,
        "agent",
        "--host-id",
        host_id,
        "--server",
        server.url,
        *server.ca_args,
    ]
    log = (log_dir / f"agent-{host_id}.log").open("ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


@pytest.fixture(name="lab_server")
def lab_server_fixture(lab: LabInfo, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server on the lab's bridge planning onto every lab host as an agent host (also used by
    the browser tests)."""
    hosts = [h.id for h in lab.hosts]
    server = ServerProcess(tmp_path, hosts, bind=lab.bridge_address)
    # agent hosts in the inventory: the server plans for them and queues their tasks
    inventory = {"hosts": [{"@id": h.id, "address": h.address, "connection": "agent"} for h in lab.hosts]}
    server.inventory.write_text(json.dumps(inventory))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_nginx_multihost_through_server_and_agents(
    lab: LabInfo, lab_server: ServerProcess, tmp_path: Path
) -> None:
    stack_name = unique_name("e2e-agents-")
    stack_doc, container_ports = with_own_name_and_ports(
        json.loads(STACK_FILE.read_text()), stack_name, [h.address for h in lab.hosts]
    )
    # host id -> the host port of the container the stack pins there (one per host)
    ports = {p["locatedInHost"]["@id"]: container_ports[p["name"]] for p in stack_node(stack_doc)["hasPart"]}
    for host in lab.hosts:
        assert not stack_containers(host.docker_url, stack_name), f"leftovers on {host.id}"
    agents = {h.id: start_agent(lab_server, lab, h.id, tmp_path) for h in lab.hosts}
    watcher = EventWatcher(lab_server)
    try:
        # planning needs every host's observation, which each agent reports when it starts
        store = JsonTaskStore(lab_server.state)
        deadline = time.monotonic() + 30
        while not all(store.get_observation(h.id) for h in lab.hosts):
            assert time.monotonic() < deadline, "not every agent reported its host's state"
            assert all(p.poll() is None for p in agents.values()), "an agent exited"
            time.sleep(0.1)
        with lab_server.admin() as admin:
            started = time.monotonic()
            response = admin.post("/stacks", json=stack_doc)
            replied = time.monotonic() - started
            assert response.status_code == 202, response.text
            body = response.json()
            assert body["status"] == "deploying" and body["id"]
            stack_id = body["id"]
            assert replied < 2.0, f"POST /stacks took {replied:.2f}s: it must not wait for the agents"

            watcher.wait_for("stack_running", timeout=90)
            stack = admin.get(f"/stacks/{stack_id}").json()
            assert stack["status"] == "running", stack

            # each instance answers on its own host's address only
            for host in lab.hosts:
                port = ports[host.id]
                assert http_get(host.address, port) is not None, f"{host.id}:{port} does not answer"
                for other in lab.hosts:
                    if other.id != host.id:
                        assert http_get(other.address, port) is None, f"{other.id} answers on {port}"
                assert len(stack_containers(host.docker_url, stack_name)) == 1

            response = admin.delete(f"/stacks/{stack_id}")
            assert response.status_code in (200, 202, 204), response.text
            watcher.wait_for("stack_deleted", timeout=90)
            wait_for(
                lambda: admin.get(f"/stacks/{stack_id}").status_code == 404,
                10,
                "the stack's records were not removed",
                interval=0.1,
            )
            for host in lab.hosts:
                assert not stack_containers(host.docker_url, stack_name), f"containers left on {host.id}"
                assert http_get(host.address, ports[host.id]) is None
            leftover = admin.get("/tasks", params={"stack": stack_id})
            if leftover.status_code == 200:
                tasks = leftover.json()
                tasks = tasks.get("tasks", tasks) if isinstance(tasks, dict) else tasks
                assert tasks == [], "the stack's task records were not removed"

        lifecycle = [t for t in watcher.types(stack_id) if t.startswith("stack_")]
        order = ["stack_deploying", "stack_running", "stack_deleting", "stack_deleted"]
        positions = [lifecycle.index(kind) for kind in order]
        assert positions == sorted(positions), lifecycle
        assert "stack_failed" not in lifecycle
        kinds = watcher.types(stack_id)
        # the plan's tasks are recorded, the stack turns deploying, then the agents report
        assert kinds.index("task_created") < kinds.index("stack_running")
        assert kinds.index("stack_deploying") < kinds.index("task_updated") < kinds.index("stack_running")
        completed = [
            e for e in watcher.events if e.get("type") == "task_updated" and "completed" in json.dumps(e)
        ]
        assert len(completed) >= 6, "every deploy and delete task's completion must be streamed"
    finally:
        watcher.close()
        stop_processes(*agents.values())
        for host_id in agents:
            log = (tmp_path / f"agent-{host_id}.log").read_text(errors="replace")
            assert lab_server.agent_tokens[host_id] not in log, "an agent logged its token"
        for host in lab.hosts:  # leftovers of a failed run; an engine restarted meanwhile is skipped
            with contextlib.suppress(docker.errors.DockerException):
                remove_stack(host.docker_url, stack_name)
