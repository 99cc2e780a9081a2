"""Rolling updates on the lab over SSH: 3 replicas on 3 hosts, changed batch by batch.

The service is polled throughout as a client behind a load balancer sees it: every 50 ms each
host's published port is asked (0.3 s timeout); a request of the service fails when no host
answers. Each host's own answers show when it was down, so that batches can be seen one at a time.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

import lab as lab_pkg
from graphium.executors.local import LocalExecutor
from graphium.plan.model import DesiredContainer
from graphium.plan.payloads import ReplacePayload, RestorePayload, RolloutStep
from graphium.records.stack import StackStatus
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus
from graphium.stack.loader import load_stack_data
from graphium.stack.models import Connection, ContainerSpec, Host, Inventory, NetworkSpec, PullPolicy
from graphium.store.json_store import JsonTaskStore
from tests.integration import test_agent as agt
from tests.integration.test_agent import engine_url, server  # noqa: F401  (fixtures)
from tests.support import (
    free_port_on,
    graphium_run,
    remove_stack,
    stack_containers,
    stack_doc,
    unique_name,
    write_json,
)

SERVE_MSG = ["sh", "-c", 'echo "$MSG" > /www/index.html && exec httpd -f -p 80 -h /www']
MONITOR = {"monitor": "0.5s"}
FAST_HEALTH = {"http": {"port": 80}, "interval": "0.3s", "timeout": "1s", "retries": 2}


def _get(address: str, port: int) -> str | None:
    conn = http.client.HTTPConnection(address, port, timeout=0.3)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode().strip()
    except OSError:
        return None
    finally:
        conn.close()


class Poller:
    """Polls every host's port in a thread; records per-host answers and service-level failures."""

    def __init__(self, addresses: list[str], port: int) -> None:
        self.addresses, self.port = addresses, port
        self.rounds = 0
        self.failed_rounds = 0
        self.seen: dict[str, list[tuple[float, str | None]]] = {a: [] for a in addresses}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            answers = []
            for address in self.addresses:
                body = _get(address, self.port)
                self.seen[address].append((time.monotonic(), body))
                answers.append(body)
            self.rounds += 1
            self.failed_rounds += all(a is None for a in answers)
            self._stop.wait(0.05)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def down_windows(self) -> dict[str, tuple[float, float]]:
        """Per host, the first and last moment it did not answer (hosts that never failed are absent)."""
        out = {}
        for address, seen in self.seen.items():
            down = [t for t, body in seen if body is None]
            if down:
                out[address] = (down[0], down[-1])
        return out


@dataclass(frozen=True)
class Deployed:
    """A stack of 3 replicas on the lab's 3 hosts, deployed once for this module's lab tests."""

    name: str
    port: int
    workdir: Path  # its stack file and state file


@pytest.fixture(scope="module")
def deployed(lab: lab_pkg.LabInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    stack = Deployed(
        unique_name("roll"), free_port_on(*(h.address for h in lab.hosts)), tmp_path_factory.mktemp("roll")
    )
    try:
        first = _apply(lab, stack.workdir, _doc(stack.name, stack.port, "v1", update=MONITOR))
        assert first.returncode == 0, first.stdout + first.stderr
        yield stack
    finally:
        for host in lab.hosts:
            remove_stack(host.docker_url, stack.name)


def _doc(name: str, port: int, msg: str, image: str = "graphium-test/web:1", **web: Any) -> dict[str, Any]:
    container = {
        "@type": "datacenter:Container",
        "name": "web",
        "image": image,
        "replicas": 3,
        "command": SERVE_MSG,
        "environment": {"MSG": msg},
        "ports": [{"containerPort": 80, "hostPort": port}],
        "healthCheck": FAST_HEALTH,
        **web,
    }
    return stack_doc(name, [container], deployment={"placementStrategy": "spread"})


def _apply(lab: lab_pkg.LabInfo, tmp_path: Path, doc: dict[str, Any], *extra: str) -> Any:
    path = write_json(tmp_path / "stack.json", doc)
    state = str(tmp_path / "state.json")
    return graphium_run("apply", str(path), "-i", str(lab.inventory), "--state", state, *extra, timeout=90)


def _replicas(lab: lab_pkg.LabInfo, stack: str) -> dict[str, dict[str, Any]]:
    """Instance name -> {host, id, name, started} for every container of the stack on the lab."""
    out = {}
    for host in lab.hosts:
        for c in stack_containers(host.docker_url, stack):
            out[c.name] = {
                "host": host,
                "id": c.id,
                "instance": c.labels["graphium.container"],
                "status": c.status,
                "started": c.attrs["State"]["StartedAt"],
            }
    return out


@pytest.mark.lab
def test_three_replicas_on_three_hosts_update_without_a_failed_request(
    lab: lab_pkg.LabInfo, deployed: Deployed
) -> None:
    port, addresses = deployed.port, [h.address for h in lab.hosts]
    before = _replicas(lab, deployed.name)
    assert sorted({r["host"].id for r in before.values()}) == sorted(h.id for h in lab.hosts)

    changed = _doc(deployed.name, port, "v2", image="graphium-test/web:2", update=MONITOR)
    with Poller(addresses, port) as poller:
        time.sleep(0.3)
        second = _apply(lab, deployed.workdir, changed)
        time.sleep(0.3)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "rolling update of web: 3 batch(es) of up to 1" in second.stdout
    assert poller.rounds > 20
    assert poller.failed_rounds == 0, f"{poller.failed_rounds} of {poller.rounds} requests failed"
    assert all(_get(a, port) == "v2" for a in addresses)

    # one batch at a time: no two hosts were ever down together, and the new containers started
    # one after another, in replica order
    windows = sorted(poller.down_windows().values())
    assert windows, "a stop-first replace leaves its own host without an answer for a moment"
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end < start, f"two hosts were down at once: {windows}"
    after = _replicas(lab, deployed.name)
    assert sorted(after) == sorted(before)  # nothing left aside: the rollout cleaned up
    started = sorted((r["started"], r["instance"]) for r in after.values())
    assert [name for _, name in started] == ["web-1", "web-2", "web-3"]
    assert not set(r["id"] for r in after.values()) & set(r["id"] for r in before.values())


def _tag_on(host: lab_pkg.LabHost, source: str, target: str) -> None:
    client = docker.DockerClient(base_url=host.docker_url, version="auto")
    try:
        repo, tag = target.rsplit(":", 1)
        client.images.get(source).tag(repo, tag)
    finally:
        client.close()


def _untag(lab: lab_pkg.LabInfo, target: str) -> None:
    for host in lab.hosts:
        client = docker.DockerClient(base_url=host.docker_url, version="auto")
        try:
            client.images.remove(target)
        except docker.errors.ImageNotFound:
            pass
        finally:
            client.close()


@pytest.mark.lab
def test_a_failing_new_version_is_rolled_back_everywhere(lab: lab_pkg.LabInfo, deployed: Deployed) -> None:
    port, addresses = deployed.port, [h.address for h in lab.hosts]
    before = _replicas(lab, deployed.name)
    served = [_get(a, port) for a in addresses]
    by_instance = {r["instance"]: r for r in before.values()}

    # the new image is good on web-1's host only: there its health check passes (the page it
    # serves names web:2); on the other hosts the same tag is web:1, whose health never passes
    image = f"graphium-test/{deployed.name}:2"
    for host in lab.hosts:
        good = host.id == by_instance["web-1"]["host"].id
        _tag_on(host, "graphium-test/web:2" if good else "graphium-test/web:1", image)
    health = {"test": "grep -q web:2 /www/index.html", "interval": "0.3s", "timeout": "1s", "retries": 2}
    bad = _doc(deployed.name, port, "v3", image=image, healthCheck=health, update=MONITOR)
    del bad["@graph"][0]["hasPart"][0]["command"]  # the image's own page: its name
    try:
        with Poller(addresses, port) as poller:
            result = _apply(lab, deployed.workdir, bad)
    finally:
        _untag(lab, image)

    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert "rolling update of web failed at batch 2 of 3" in out, out
    assert "rolled back: every replica runs its previous container again" in out, out
    assert poller.failed_rounds == 0, f"{poller.failed_rounds} of {poller.rounds} requests failed"
    after = _replicas(lab, deployed.name)
    assert {n: (r["id"], r["status"]) for n, r in after.items()} == {
        n: (r["id"], "running") for n, r in before.items()
    }, "every replica runs its previous container again, and nothing is left aside"
    assert [_get(a, port) for a in addresses] == served
    with JsonTaskStore(deployed.workdir / "state.json") as store:
        record = store.get_stack(deployed.name)
    assert record is not None and record.status is StackStatus.error
    assert {n: p["containerId"] for n, p in record.placements.items()} == {
        r["instance"]: r["id"] for r in before.values()
    }, "the record names the containers that run again"


@pytest.fixture
def local_stack(docker_url: str) -> Iterator[str]:
    name = unique_name("roll")
    yield name
    remove_stack(docker_url, name)


@pytest.mark.docker
async def test_start_first_starts_the_new_container_before_the_old_one_stops(
    docker_url: str, local_stack: str, tmp_path: Path
) -> None:
    host = Host.model_validate({"@id": "local", "connection": Connection.local, "dockerHost": docker_url})
    store = JsonTaskStore(tmp_path / "state.json")
    executor = LocalExecutor()
    deployer = Deployer(store, executor, Inventory(hosts=[host]), events=EventBus(store))
    update = {"order": "start-first", "monitor": "0.3s"}
    try:
        for msg in ("v1", "v2"):
            doc = _doc(local_stack, 0, msg, update=update, replicas=2, ports=[{"containerPort": 80}])
            plan = await deployer.plan(load_stack_data(doc, "stack.json"), {})
            since = time.time()
            result = await deployer.apply(plan)
            assert result.ok, [t.error for t in result.failed]
            if msg == "v1":
                before = {
                    c.labels["graphium.container"]: c.id for c in stack_containers(docker_url, local_stack)
                }
    finally:
        await executor.close()
    assert [r.order for r in plan.rollouts] == ["start-first"] and plan.rollouts[0].notes == []
    after = {c.labels["graphium.container"]: c.id for c in stack_containers(docker_url, local_stack)}
    assert set(after) == {"web-1", "web-2"} and not set(after.values()) & set(before.values())

    client = docker.DockerClient(base_url=docker_url, version="auto")
    try:
        events = client.events(
            since=int(since) - 1, until=int(time.time()) + 1, decode=True,
            filters={"type": "container", "label": f"graphium.stack={local_stack}"},
        )  # fmt: skip
        seen = [
            (e["timeNano"], e["status"], e["id"])
            for e in events
            if e.get("status") in ("start", "die") and e["timeNano"] >= since * 1e9
        ]
    finally:
        client.close()
    order = [(status, cid) for _, status, cid in sorted(seen)]
    # each new container started while the old one still ran; the second batch after the first
    assert order == [
        ("start", after["web-1"]),
        ("die", before["web-1"]),
        ("start", after["web-2"]),
        ("die", before["web-2"]),
    ]


def _agent_container(name: str, command: list[str], spec_hash: str) -> Any:
    spec = ContainerSpec(name=name, image="graphium-test/web:1", command=command, environment={"MSG": name})
    return DesiredContainer(
        stack=agt.STACK,
        name=name,
        declared_name="web",
        host=agt.HOST,
        spec=spec,
        network=NetworkSpec(name=agt.NETWORK),
        pull_policy=PullPolicy.if_not_present,
        spec_hash=spec_hash,
        field_hashes={},
    )


def _step_task(old: str, new: Any, batch: int, deps: list[str]) -> Task:
    step = RolloutStep(container="web", batch=batch, batches=2, order="start-first",
                       failure_action="continue", keep_old=True)  # fmt: skip
    payload = ReplacePayload(container=new, old_container_id=old, rollout=step)
    return Task(id=agt.new_id("rep"), task_type=TaskType.replace, host_id=agt.HOST, stack_id=agt.STACK,
                payload=payload.dump(), depends_on=deps, timeout_seconds=60, max_retries=0)  # fmt: skip


@pytest.mark.docker
async def test_an_agent_runs_rollout_steps_past_a_failure_and_restores(
    server: Any,  # noqa: F811  (test_agent's fixtures)
    engine_url: str,  # noqa: F811
) -> None:
    """Through an agent: a failed step of a `continue` rollout still lets the next batch be
    claimed; start-first keeps the old container aside; a restore gives it back."""
    deployed = [agt.deploy_task(n, command=SERVE_MSG) for n in ("web-1", "web-2")]
    async with agt.agent_running(server, engine_url):
        agt.create_tasks(server, deployed)
        old = [(await agt.wait_task(server, t.id, timeout=30)).result or {} for t in deployed]
        first = _step_task(
            old[0]["containerId"], _agent_container("web-1", ["sh", "-c", "exit 3"], "v2"), 1, []
        )
        second = _step_task(old[1]["containerId"], _agent_container("web-2", SERVE_MSG, "v2"), 2, [first.id])
        agt.create_tasks(server, [first, second])
        failed = await agt.wait_task(server, first.id, timeout=30)
        replaced = await agt.wait_task(server, second.id, timeout=30)
        assert failed.status is TaskStatus.failed and "kept running throughout" in (failed.error or "")
        assert replaced.status is TaskStatus.completed, replaced.error
        assert (replaced.result or {})["keptOld"] == old[1]["containerId"]
        aside = agt.containers_named(engine_url, f"{agt.STACK}-web-2-replaced-{old[1]['containerId'][:12]}")
        assert [c["State"] for c in aside] == ["exited"]  # stopped, kept for a rollback

        restore = Task(
            id=agt.new_id("res"), task_type=TaskType.restore, host_id=agt.HOST, stack_id=agt.STACK,
            payload=RestorePayload(name="web-2", docker_name=f"{agt.STACK}-web-2",
                                   old_container_id=old[1]["containerId"],
                                   new_container_id=(replaced.result or {})["containerId"]).dump(),
        )  # fmt: skip
        agt.create_tasks(server, [restore])
        restored = await agt.wait_task(server, restore.id, timeout=30)
    assert restored.status is TaskStatus.completed, restored.error
    for name, before in (("web-1", old[0]), ("web-2", old[1])):
        [running] = agt.containers_named(engine_url, f"{agt.STACK}-{name}")
        assert (running["Id"], running["State"]) == (before["containerId"], "running")
    assert agt.containers_named(engine_url, f"{agt.STACK}-web-2-replaced-{old[1]['containerId'][:12]}") == []
