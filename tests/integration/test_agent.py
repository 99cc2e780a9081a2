"""The polling agent against a real server process and the lab's root-namespace engine.

Every scenario runs real processes: ``graphium-run serve`` on loopback, agents in-process (so the
test can count what each executed) or as subprocesses (so one can be SIGKILLed), and real
containers. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from graphium.control.agent import Agent
from graphium.plan.model import DesiredContainer
from graphium.plan.payloads import DeletePayload, DeployPayload, NetworkPayload
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.stack.models import ContainerSpec, HealthCheck, NetworkSpec, PullPolicy
from graphium.store.json_store import JsonTaskStore
from tests.integration.server_fixture import RUNNER, ServerProcess
from tests.support import unique_name

pytestmark = pytest.mark.docker

HOST = "localhost-docker"
STACK = unique_name("agt")  # concurrent sessions share the engine: a name of its own
NETWORK = f"{STACK}-net"
IMAGE = "graphium-test/web:1"
REPO = Path(__file__).resolve().parents[2]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def deploy_task(
    name: str,
    *,
    command: list[str] | None = None,
    health: HealthCheck | None = None,
    timeout: float = 60.0,
    max_retries: int = 0,
    depends_on: list[str] | None = None,
) -> Task:
    spec = ContainerSpec(name=name, image=IMAGE, command=command, health_check=health)
    desired = DesiredContainer(
        stack=STACK,
        name=name,
        declared_name=name,
        host=HOST,
        spec=spec,
        network=NetworkSpec(name=NETWORK),
        pull_policy=PullPolicy.if_not_present,
        spec_hash=f"test:{name}",
        field_hashes={},
    )
    return Task(
        id=new_id("deploy"),
        task_type=TaskType.deploy,
        host_id=HOST,
        stack_id=STACK,
        payload=DeployPayload(container=desired).dump(),
        timeout_seconds=timeout,
        max_retries=max_retries,
        depends_on=depends_on or [],
    )


def network_task(name: str) -> Task:
    payload = NetworkPayload(stack=STACK, network=NetworkSpec(name=name))
    return Task(
        id=new_id("net"),
        task_type=TaskType.ensure_network,
        host_id=HOST,
        stack_id=STACK,
        payload=payload.dump(),
    )


def delete_task(docker_name: str) -> Task:
    payload = DeletePayload(docker_name=docker_name, stop_timeout=1)
    return Task(
        id=new_id("del"), task_type=TaskType.delete, host_id=HOST, stack_id=STACK, payload=payload.dump()
    )


def create_tasks(server: ServerProcess, tasks: list[Task]) -> None:
    with server.admin() as client:
        for task in tasks:
            response = client.post("/tasks", json=task.dump())
            assert response.status_code in (200, 201), response.text


def get_task(server: ServerProcess, task_id: str) -> Task:
    with server.admin() as client:
        response = client.get(f"/tasks/{task_id}")
        assert response.status_code == 200, response.text
        return Task.model_validate(response.json())


async def wait_task(
    server: ServerProcess, task_id: str, *, until: set[TaskStatus] | None = None, timeout: float = 60.0
) -> Task:
    wanted = until or {TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled}
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(
        base_url=f"{server.url}/api/v1", headers=server.admin_headers, verify=server.verify
    ) as client:
        while True:
            response = await client.get(f"/tasks/{task_id}")
            assert response.status_code == 200, response.text
            task = Task.model_validate(response.json())
            if task.status in wanted:
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still {task.status.value} after {timeout}s")
            await asyncio.sleep(0.05)


def clean_engine(url: str) -> None:
    client = docker.APIClient(base_url=url, version="auto")
    try:
        for c in client.containers(all=True, filters={"label": [f"graphium.stack={STACK}"]}):
            client.remove_container(c["Id"], force=True, v=True)
        for n in client.networks(filters={"label": [f"graphium.stack={STACK}"]}):
            client.remove_network(n["Id"])
    finally:
        client.close()


def containers_named(url: str, name: str) -> list[dict[str, Any]]:
    client = docker.APIClient(base_url=url, version="auto")
    try:
        found = client.containers(all=True, filters={"label": [f"graphium.stack={STACK}"]})
        return [c for c in found if f"/{name}" in c["Names"]]
    finally:
        client.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path, [HOST])
    try:
        srv.start()  # inside the try: a server that never became ready is still stopped
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def engine_url(docker_url: str) -> Iterator[str]:
    """The root-namespace engine with the test stack's network in place, cleaned before and after."""
    clean_engine(docker_url)
    client = docker.APIClient(base_url=docker_url, version="auto")
    client.create_network(NETWORK, labels={"graphium.managed": "true", "graphium.stack": STACK})
    client.close()
    try:
        yield docker_url
    finally:
        clean_engine(docker_url)


class RunningAgent:
    """An in-process agent on a background task."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.task = asyncio.create_task(agent.run())

    def executed(self) -> list[str]:
        return [o.task_id for o in self.agent.outcomes]

    async def stop(self) -> None:
        self.agent.stop()
        await asyncio.wait_for(self.task, 30)


@contextlib.asynccontextmanager
async def agent_running(server: ServerProcess, engine_url: str, **kwargs: Any) -> AsyncIterator[RunningAgent]:
    kwargs.setdefault("lease_seconds", 6.0)
    kwargs.setdefault("backoff_cap", 1.0)
    kwargs.setdefault("ca_cert", str(server.ca_cert))
    agent = Agent(HOST, server.url, server.agent_tokens[HOST], docker_host=engine_url, **kwargs)
    running = RunningAgent(agent)
    try:
        yield running
    finally:
        await running.stop()


def agent_subprocess(
    server: ServerProcess, engine_url: str, log_path: Path, *, lease: float
) -> subprocess.Popen[bytes]:
    """A separate agent process (so it can be SIGKILLed), with a short lease."""
    code = (
        "import logging, sys, asyncio\n"
        "from graphium.control.agent import Agent\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "host, url, token, engine, lease, ca = sys.argv[1:7]\n"
        "a = Agent(host, url, token, docker_host=engine, lease_seconds=float(lease), ca_cert=ca)\n"
        "asyncio.run(a.run())\n"
    )
    args = [sys.executable, "-c", code, HOST, server.url, server.agent_tokens[HOST], engine_url, str(lease),
            str(server.ca_cert)]  # fmt: skip
    return subprocess.Popen(args, stdout=log_path.open("ab"), stderr=subprocess.STDOUT, cwd=REPO)


# -- scenarios ------------------------------------------------------------------------------------


async def test_deploy_task_runs_container_and_completes(
    server: ServerProcess, engine_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    task = deploy_task("web")
    async with agent_running(server, engine_url) as running:
        await asyncio.sleep(0.3)  # the agent is long-polling before the task exists
        create_tasks(server, [task])
        done = await wait_task(server, task.id, timeout=30)
    assert done.status is TaskStatus.completed, done.error
    assert done.result is not None and done.result["dockerName"] == f"{STACK}-web"
    assert done.agent_id == running.agent.agent_id
    found = containers_named(engine_url, f"{STACK}-web")
    assert len(found) == 1 and found[0]["State"] == "running"
    assert found[0]["Id"] == done.result["containerId"]
    assert running.executed() == [task.id]
    assert server.agent_tokens[HOST] not in caplog.text


async def test_failing_task_is_reported_failed_with_the_error(server: ServerProcess, engine_url: str) -> None:
    task = deploy_task("crash", command=["sh", "-c", "echo boom; exit 3"])
    async with agent_running(server, engine_url):
        create_tasks(server, [task])
        done = await wait_task(server, task.id, timeout=30)
    assert done.status is TaskStatus.failed
    assert done.error is not None and "exited with code 3" in done.error and "boom" in done.error
    assert containers_named(engine_url, f"{STACK}-crash") == []  # removed so a re-apply starts afresh


async def test_timeout_seconds_is_enforced(server: ServerProcess, engine_url: str) -> None:
    # never healthy: the start period keeps it "starting" far beyond the task's 2 s budget
    health = HealthCheck(test=["CMD", "false"], interval=1, retries=100, start_period=300)
    task = deploy_task("slow", health=health, timeout=2)
    async with agent_running(server, engine_url):
        create_tasks(server, [task])
        done = await wait_task(server, task.id, timeout=30)
    assert done.status is TaskStatus.failed
    # the engine's own deadline (quoting the health check) or the agent's hard stop, whichever first
    assert done.error is not None, done
    assert "not running and healthy after" in done.error or "timeoutSeconds=2" in done.error, done.error
    assert done.started_at and done.completed_at
    from datetime import datetime

    took = (
        datetime.fromisoformat(done.completed_at) - datetime.fromisoformat(done.started_at)
    ).total_seconds()
    assert 1.5 <= took <= 5, took


async def test_hard_stop_when_the_engine_call_hangs(server: ServerProcess, engine_url: str) -> None:
    """A pull from a registry that accepts but never answers cannot be bounded by the engine
    adapter; the agent's own ``wait_for`` still ends the task on time."""
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(16)
    port = sink.getsockname()[1]
    try:
        spec = ContainerSpec(name="hang", image=f"127.0.0.1:{port}/never:1")
        desired = DesiredContainer(
            stack=STACK,
            name="hang",
            declared_name="hang",
            host=HOST,
            spec=spec,
            network=NetworkSpec(name=NETWORK),
            pull_policy=PullPolicy.always,
            spec_hash="test:hang",
            field_hashes={},
        )
        task = Task(
            id=new_id("hang"),
            task_type=TaskType.deploy,
            host_id=HOST,
            stack_id=STACK,
            payload=DeployPayload(container=desired).dump(),
            timeout_seconds=2,
        )
        async with agent_running(server, engine_url):
            started = time.monotonic()
            create_tasks(server, [task])
            done = await wait_task(server, task.id, timeout=30)
            took = time.monotonic() - started
    finally:
        sink.close()
    assert done.status is TaskStatus.failed
    assert done.error is not None and "timeoutSeconds=2" in done.error, done.error
    assert took < 6, took


async def test_agent_killed_mid_task_is_rerun_after_lease_expiry(
    server: ServerProcess, engine_url: str, tmp_path: Path
) -> None:
    # healthy only after its first probe at 4 s: long enough to kill the agent while it waits
    health = HealthCheck(test=["CMD", "true"], interval=4, retries=3)
    task = deploy_task("slowstart", health=health, max_retries=2, timeout=60)
    log_path = tmp_path / "agent1.log"
    first = agent_subprocess(server, engine_url, log_path, lease=3)
    try:
        create_tasks(server, [task])
        await wait_task(server, task.id, until={TaskStatus.running}, timeout=20)
        deadline = time.monotonic() + 10
        # killed once the container runs (waiting for its health), not between create and start,
        # when a re-run must recreate it rather than adopt it
        while not [c for c in containers_named(engine_url, f"{STACK}-slowstart") if c["State"] == "running"]:
            assert time.monotonic() < deadline, "the container never started"
            await asyncio.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(5)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(5)
    assert server.agent_tokens[HOST] not in log_path.read_text(errors="replace")
    # nobody holds it now: after the lease (3 s) it must go back to pending and be retried
    back = await wait_task(server, task.id, until={TaskStatus.pending}, timeout=20)
    assert back.retry_count == 1
    async with agent_running(server, engine_url, lease_seconds=6) as second:
        done = await wait_task(server, task.id, timeout=60)
    assert done.status is TaskStatus.completed, done.error
    assert done.agent_id == second.agent.agent_id
    assert done.result is not None and done.result["adopted"] is True  # idempotent re-run
    found = containers_named(engine_url, f"{STACK}-slowstart")
    assert len(found) == 1 and found[0]["Id"] == done.result["containerId"]


async def test_two_agents_racing_run_each_task_exactly_once(server: ServerProcess, engine_url: str) -> None:
    # networks (real engine work, ~0.1 s each; few, as address pools are finite) and cheap deletes
    networks = [network_task(f"{STACK}-race-{i:02d}") for i in range(12)]
    deletes = [delete_task(f"{STACK}-race-absent-{i:02d}") for i in range(28)]
    tasks = networks + deletes
    random.Random(4).shuffle(tasks)
    async with (
        agent_running(server, engine_url, agent_id="racer-a") as a,
        agent_running(server, engine_url, agent_id="racer-b") as b,
    ):
        await asyncio.sleep(0.3)
        create_tasks(server, tasks)
        done = [await wait_task(server, t.id, timeout=60) for t in tasks]
    executed = a.executed() + b.executed()
    counts = Counter(executed)
    assert sorted(counts) == sorted(t.id for t in tasks)
    assert max(counts.values()) == 1, [k for k, v in counts.items() if v > 1]
    assert all(t.status is TaskStatus.completed for t in done)
    assert all(t.result is not None for t in done)
    network_ids = {t.id for t in networks}
    assert all(t.result["created"] is True for t in done if t.id in network_ids and t.result)
    assert {t.agent_id for t in done} <= {"racer-a", "racer-b"}
    assert a.executed() and b.executed(), "one agent got every task: no race was exercised"


async def test_agent_with_slots_claims_in_batches_and_runs_each_task_once(
    server: ServerProcess, engine_url: str
) -> None:
    # enqueued before the agent starts, so its first claims find more than one task waiting
    networks = [network_task(f"{STACK}-slot-{i:02d}") for i in range(4)]
    deletes = [delete_task(f"{STACK}-slot-absent-{i:02d}") for i in range(16)]
    tasks = networks + deletes
    create_tasks(server, tasks)
    async with agent_running(server, engine_url, agent_id="slotted", slots=4) as running:
        done = [await wait_task(server, t.id, timeout=60) for t in tasks]
        await asyncio.sleep(0.3)
    counts = Counter(running.executed())
    assert sorted(counts) == sorted(t.id for t in tasks) and max(counts.values()) == 1
    assert all(t.status is TaskStatus.completed and t.agent_id == "slotted" for t in done)
    assert all(o.status is TaskStatus.completed for o in running.agent.outcomes)
    # one claim stamps its whole batch alike: fewer distinct start times than tasks
    assert len({t.started_at for t in done}) < len(tasks)
    assert all(
        t.result and t.result["created"] is True for t in done if t.task_type is TaskType.ensure_network
    )


async def test_agent_reconnects_after_server_restart(server: ServerProcess, engine_url: str) -> None:
    async with agent_running(server, engine_url, backoff_cap=1.0) as running:
        await asyncio.sleep(0.5)  # in the middle of a long-poll
        server.stop(signal.SIGKILL)
        await asyncio.sleep(1.5)  # several failed reconnects
        server.start()
        task = delete_task(f"{STACK}-nothing-here")
        create_tasks(server, [task])
        done = await wait_task(server, task.id, timeout=20)
    assert done.status is TaskStatus.completed, done.error
    assert done.result is not None and done.result["removed"] is False
    assert running.executed() == [task.id]


async def test_restarted_agent_never_reruns_a_completed_task(server: ServerProcess, engine_url: str) -> None:
    first_task = deploy_task("once")
    async with agent_running(server, engine_url, agent_id="before") as before:
        create_tasks(server, [first_task])
        assert (await wait_task(server, first_task.id)).status is TaskStatus.completed
    assert before.executed() == [first_task.id]
    second_task = delete_task(f"{STACK}-absent")
    async with agent_running(server, engine_url, agent_id="after") as after:
        create_tasks(server, [second_task])
        assert (await wait_task(server, second_task.id)).status is TaskStatus.completed
        await asyncio.sleep(0.5)
    assert after.executed() == [second_task.id]
    assert get_task(server, first_task.id).agent_id == "before"
    assert len(containers_named(engine_url, f"{STACK}-once")) == 1


async def test_dependent_task_waits_for_its_dependency(server: ServerProcess, engine_url: str) -> None:
    net = network_task(f"{STACK}-dep-net")
    # a deploy onto the network the first task creates: it only works in that order, and its
    # higher priority would put it first if dependsOn were ignored
    dependent = deploy_task("dep", depends_on=[net.id])
    dependent.priority = 9
    dependent.payload["container"]["network"] = {"name": f"{STACK}-dep-net"}
    create_tasks(server, [net, dependent])
    async with agent_running(server, engine_url) as running:
        done = await wait_task(server, dependent.id, timeout=30)
    assert done.status is TaskStatus.completed, done.error
    assert running.executed() == [net.id, dependent.id]


async def test_observed_state_is_reported(server: ServerProcess, engine_url: str) -> None:
    task = deploy_task("seen")
    async with agent_running(server, engine_url):
        create_tasks(server, [task])
        await wait_task(server, task.id)
        await asyncio.sleep(0.5)  # the report follows the status update
    # read back through the store the server writes (a second process may open it)
    seen = JsonTaskStore(server.state).get_observation(HOST)
    assert seen is not None, "no observation was stored"
    observed, _ = seen
    assert observed.error is None
    assert f"{STACK}-seen" in [c.docker_name for c in observed.containers]


def test_agent_cli_stops_cleanly_on_sigterm(server: ServerProcess, engine_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "cli-agent.log"
    env = {**os.environ, "DOCKER_HOST": engine_url, "GRAPHIUM_AGENT_TOKEN": server.agent_tokens[HOST],
           "GRAPHIUM_CA_CERT": str(server.ca_cert)}  # fmt: skip
    proc = subprocess.Popen(
        [*RUNNER, "agent", "--host-id", HOST, "--server", server.url],
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    try:
        task = delete_task(f"{STACK}-absent-cli")
        create_tasks(server, [task])
        assert asyncio.run(wait_task(server, task.id, timeout=20)).status is TaskStatus.completed
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text, text
    assert server.agent_tokens[HOST] not in text
