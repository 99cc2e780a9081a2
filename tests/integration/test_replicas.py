"""Two ``graphium-run serve`` processes on one PostgreSQL database, agents in the lab's hosts.

Every process is real: two servers (replicas) over HTTPS on the lab's bridge, each started with
``GRAPHIUM_STORE=postgresql://...`` (the lab's throwaway cluster, one fresh database for this
module), and one ``graphium-run agent`` in each lab host's network namespace, given both
replicas' URLs. The multi-host nginx stack is deployed through one replica and watched and
deleted through the other; one replica is SIGKILLed mid-deploy while the agents fail over; the
task monitor moves to the surviving replica when its leader dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from graphium.store.base import TaskStore
from graphium.store.open import open_store
from lab import LabInfo
from lab import postgres as lab_postgres
from tests.integration.server_fixture import RUNNER, ServerProcess
from tests.integration.test_agents_e2e import STACK_FILE, EventWatcher
from tests.support import (
    graphium_run,
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


class Replica(ServerProcess):
    """A server process on the shared database (``GRAPHIUM_STORE``, never on the command line,
    where ``ps`` would show the URL's password), with a log of its own."""

    def __init__(self, workdir: Path, hosts: list[str], *, name: str, store_url: str, bind: str) -> None:
        super().__init__(workdir, hosts, bind=bind, env={"GRAPHIUM_STORE": store_url})
        self.name = name
        self.log_path = workdir / f"server-{name}.log"

    def command(self) -> list[str]:
        cmd = super().command()
        at = cmd.index("--state")
        return cmd[:at] + cmd[at + 2 :]

    def leads(self) -> bool:
        """Whether the current process's log says it took the task monitor's lead (last word wins)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        current = text.rsplit(" serving https://", 1)[-1]  # what the latest start logged
        said = re.findall(r"task monitor: (this|another) replica leads", current)
        return bool(said) and said[-1] == "this"


@dataclass
class Pair:
    a: Replica
    b: Replica
    store: TaskStore
    store_url: str
    agents: dict[str, subprocess.Popen[bytes]]
    workdir: Path

    @property
    def urls(self) -> str:
        return f"{self.a.url},{self.b.url}"

    def agent_log(self, host_id: str) -> str:
        return (self.workdir / f"agent-{host_id}.log").read_text(errors="replace")


def start_agent(pair_urls: str, server: ServerProcess, lab: LabInfo, host_id: str, log_dir: Path) -> Any:
    """``graphium-run agent`` in the host's namespace, given both replicas (GRAPHIUM_SERVER)."""
    host = lab.host(host_id)
    env = {
        **os.environ,
        "DOCKER_HOST": host.docker_url,
        "GRAPHIUM_AGENT_TOKEN": server.agent_tokens[host_id],
        "GRAPHIUM_SERVER": pair_urls,
        "PYTHONPATH": str(REPO),
    }
    cmd = [
        "nsenter",
        f"--net=/run/netns/{host.netns}",
        *RUNNER,
        "agent",
        "--host-id",
        host_id,
        *server.ca_args,
    ]
    log = (log_dir / f"agent-{host_id}.log").open("ab")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


@pytest.fixture(name="pair", scope="module")
def pair_fixture(lab: LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    workdir = tmp_path_factory.mktemp("replicas")
    hosts = [h.id for h in lab.hosts]
    inventory = {"hosts": [{"@id": h.id, "address": h.address, "connection": "agent"} for h in lab.hosts]}
    with lab_postgres.fresh_database("replicas") as url:
        a = Replica(workdir, hosts, name="a", store_url=url, bind=lab.bridge_address)
        b = Replica(workdir, hosts, name="b", store_url=url, bind=lab.bridge_address)
        a.inventory.write_text(json.dumps(inventory))
        store = open_store(url)
        agents: dict[str, subprocess.Popen[bytes]] = {}
        try:
            a.start(timeout=60)
            b.start(timeout=60)
            pair = Pair(a, b, store, url, agents, workdir)
            agents.update({h: start_agent(pair.urls, a, lab, h, workdir) for h in hosts})
            wait_for(
                lambda: all(store.get_observation(h) for h in hosts), 60, "every agent reported its host"
            )
            yield pair
        finally:
            stop_processes(*agents.values())
            a.stop()
            b.stop()
            for host_id in agents:
                log = (workdir / f"agent-{host_id}.log").read_text(errors="replace")
                assert a.agent_tokens[host_id] not in log, "an agent logged its token"
            for replica in (a, b):
                assert "password" not in replica.log_tail().lower() or "***" in replica.log_tail()
            store.close()


def own_stack(lab: LabInfo, prefix: str) -> tuple[str, dict[str, Any], dict[str, int]]:
    """The multi-host nginx stack under a name and host ports of its own: (name, doc, host -> port)."""
    name = unique_name(prefix)
    doc, container_ports = with_own_name_and_ports(
        json.loads(STACK_FILE.read_text()), name, [h.address for h in lab.hosts]
    )
    ports = {p["locatedInHost"]["@id"]: container_ports[p["name"]] for p in stack_node(doc)["hasPart"]}
    return name, doc, ports


@contextlib.contextmanager
def cleaned(lab: LabInfo, name: str) -> Iterator[None]:
    try:
        yield
    finally:
        for host in lab.hosts:
            with contextlib.suppress(docker.errors.DockerException):
                remove_stack(host.docker_url, name)


def assert_serving(lab: LabInfo, name: str, ports: dict[str, int]) -> None:
    for host in lab.hosts:
        assert len(stack_containers(host.docker_url, name)) == 1, f"not one container on {host.id}"
        assert http_get(host.address, ports[host.id]) is not None, (
            f"{host.id}:{ports[host.id]} does not answer"
        )


def delete_through(server: ServerProcess, lab: LabInfo, name: str) -> None:
    with server.admin() as api:
        response = api.delete(f"/stacks/{name}")
        assert response.status_code in (200, 202), response.text
        wait_for(lambda: api.get(f"/stacks/{name}").status_code == 404, 60, "the stack was not deleted")
    for host in lab.hosts:
        assert not stack_containers(host.docker_url, name), f"containers left on {host.id}"


def test_deploy_through_one_replica_watch_and_delete_through_the_other(lab: LabInfo, pair: Pair) -> None:
    name, doc, ports = own_stack(lab, "rep-")
    watcher = EventWatcher(pair.b)  # a dashboard watching replica B
    with cleaned(lab, name):
        try:
            with pair.a.admin() as api:
                response = api.post("/stacks", json=doc)
                assert response.status_code == 202, response.text
            watcher.wait_for("stack_running", timeout=60)  # A's run, seen on B's stream
            with pair.b.admin() as api:
                state = api.get(f"/stacks/{name}").json()
                assert state["status"] == "running", state
                assert {t["status"] for t in state["tasks"]} == {"completed"}
            assert_serving(lab, name, ports)
            # a live read asked of B reaches every agent, whichever replica they claim from
            env = {"GRAPHIUM_TOKEN": pair.a.admin_token, "GRAPHIUM_CA_CERT": str(pair.b.ca_cert)}
            ps = graphium_run("ps", name, "--server", pair.b.url, "--json", env=env)
            assert ps.returncode == 0, ps.stdout + ps.stderr
            rows = [json.loads(line) for line in ps.stdout.splitlines()]
            assert sorted(r["type"] for r in rows) == ["container"] * len(lab.hosts), rows
            delete_through(pair.b, lab, name)
            watcher.wait_for("stack_deleted", timeout=30)
        finally:
            watcher.close()
    kinds = [t for t in watcher.types(name) if t.startswith("stack_")]
    assert kinds.index("stack_deploying") < kinds.index("stack_running") < kinds.index("stack_deleted")


def task_ids_in(log: str, word: str) -> list[str]:
    return re.findall(rf"task (\S+) {word}", log)


def test_a_replica_killed_mid_deploy(lab: LabInfo, pair: Pair) -> None:
    """SIGKILL replica A right after it accepted the stack (its run and the agents' requests
    die with it): the agents move to B, B's monitor settles the stack A ran, every task ran once."""
    name, doc, ports = own_stack(lab, "repkill-")
    with cleaned(lab, name):
        with pair.a.admin() as api:
            response = api.post("/stacks", json=doc)
            assert response.status_code == 202, response.text
        pair.a.stop(signal.SIGKILL)
        open_at_kill = [t for t in pair.store.list_tasks(stack_id=name) if t.status.value != "completed"]
        try:
            with pair.b.admin() as api:
                wait_for(
                    lambda: api.get(f"/stacks/{name}").json().get("status") == "running",
                    45,
                    "the stack did not reach running through replica B",
                    interval=0.2,
                )
            assert_serving(lab, name, ports)
            tasks = pair.store.list_tasks(stack_id=name)
            assert tasks and {t.status.value for t in tasks} == {"completed"}, [
                (t.id, t.status) for t in tasks
            ]
            assert all(t.retry_count == 0 for t in tasks), "a task's lease expired: it was requeued"
            # run once: across the agents' logs each task was received once and completed once
            logs = "".join(pair.agent_log(h.id) for h in lab.hosts)
            for word in ("claimed", "completed"):
                seen = Counter(i.rstrip(":") for i in task_ids_in(logs, word))
                assert {t.id: seen[t.id] for t in tasks} == {t.id: 1 for t in tasks}, (word, seen)
            assert "switching to" in logs, "no agent says it moved to the other replica"
            assert open_at_kill, "the deploy had finished before the kill: nothing was tested"
            delete_through(pair.b, lab, name)
        finally:
            pair.a.start(timeout=60)  # for the next test, on the same port and database


def test_the_task_monitor_moves_when_its_leader_dies(pair: Pair) -> None:
    wait_for(lambda: pair.a.leads() or pair.b.leads(), 15, "no replica took the task monitor's lead")
    leader, other = (pair.a, pair.b) if pair.a.leads() else (pair.b, pair.a)
    assert not other.leads(), "both replicas lead the task monitor"
    leader.stop(signal.SIGKILL)
    host = "no-agent-host"  # no agent claims it but the ghost below
    with other.admin() as api:
        body = {"taskType": "stop", "hostId": host, "payload": {"dockerName": "x"}, "maxRetries": 1}
        created = api.post("/tasks", json=body)
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        # claimed by an agent that then vanishes, with a lease of 1 s
        claimed = api.post(f"/agents/{host}/claims", json={"agentId": "ghost", "leaseSeconds": 1})
        assert claimed.status_code == 200 and claimed.json(), claimed.text
        wait_for(
            lambda: api.get(f"/tasks/{task_id}").json()["retryCount"] >= 1,
            15,
            "the surviving replica did not requeue the expired lease",
            interval=0.2,
        )
    assert other.leads(), other.log_tail()
