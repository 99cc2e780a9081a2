"""The contract every Executor must pass, whatever its transport (local socket, SSH, agents).

Use it by subclassing :class:`ExecutorContract` in a test module that provides the fixtures
``executor`` (the Executor under test, closed by the fixture) and ``host`` (a Host it can reach
whose engine holds the lab's test images). Override ``published_ip`` when the host's published
ports answer elsewhere than on 127.0.0.1, and ``free_port`` when its ports are not this machine's.

Everything is observed through the executor itself (task results, ``observe``) and over HTTP, so
the suite proves behaviour rather than implementation.
"""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from graphium.errors import ExecutionError
from graphium.executors.base import Executor
from graphium.plan.model import DesiredContainer, ObservedContainer
from graphium.plan.payloads import (
    DeletePayload,
    DeployPayload,
    NetworkPayload,
    RemoveNetworkPayload,
    ReplacePayload,
    StartPayload,
)
from graphium.records.task import Task, TaskType
from graphium.stack.models import ContainerSpec, Host, NetworkSpec, PullPolicy

WEB_1 = "graphium-test/web:1"
WEB_2 = "graphium-test/web:2"
# serve $MSG, so a test can tell which container answers
SERVE_MSG = [
    "sh",
    "-c",
    'mkdir -p /tmp/www && echo "$MSG" > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www',
]
FAST_HEALTH = {"interval": "0.2s", "timeout": "2s", "retries": 2}


def desired(
    stack: str,
    name: str,
    host: Host,
    *,
    pull_policy: PullPolicy = PullPolicy.if_not_present,
    spec_hash: str = "test:1",
    **fields: Any,
) -> DesiredContainer:
    """A DesiredContainer as the planner would write it (hashes are opaque to executors)."""
    spec = ContainerSpec.model_validate({"name": name, "image": WEB_1, **fields})
    return DesiredContainer(
        stack=stack,
        name=name,
        declared_name=name,
        host=host.id,
        spec=spec,
        network=NetworkSpec(name=f"{stack}-net"),
        pull_policy=pull_policy,
        spec_hash=spec_hash,
        field_hashes={"image": spec_hash + ":image", "environment": spec_hash + ":env"},
    )


def changed(container: DesiredContainer, spec_hash: str, **fields: Any) -> DesiredContainer:
    """``container`` with some spec fields changed, as a new plan would desire it."""
    spec = container.spec.model_dump(by_alias=True, exclude_defaults=True, exclude={"name"})
    return desired(
        container.stack,
        container.name,
        Host.model_validate({"@id": container.host}),
        pull_policy=container.pull_policy,
        spec_hash=spec_hash,
        **{**spec, **fields},
    )


def task(kind: TaskType, host: Host, payload: Any, *, timeout: float = 30.0) -> Task:
    return Task(
        id=f"t-{uuid.uuid4().hex[:8]}",
        task_type=kind,
        host_id=host.id,
        payload=payload.dump(),
        timeout_seconds=timeout,
    )


async def http_get(address: str, port: int, *, within: float = 5.0) -> str:
    """The body served at ``address:port``, retrying while the server comes up."""

    def fetch() -> str:
        with urllib.request.urlopen(f"http://{address}:{port}/", timeout=2) as response:
            return str(response.read().decode().strip())

    deadline = time.monotonic() + within
    while True:
        try:
            return await asyncio.to_thread(fetch)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


class ExecutorFixtures:
    """Fixtures and helpers of the contract, for executor-specific test classes to reuse."""

    @pytest.fixture
    def published_ip(self) -> str:
        return "127.0.0.1"

    @pytest.fixture
    def free_port(self) -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    @pytest.fixture
    async def stack(self, executor: Executor, host: Host) -> AsyncIterator[str]:
        """A unique stack name with its network; everything of it is removed afterwards."""
        name = f"ct{uuid.uuid4().hex[:8]}"
        await executor.run(
            task(
                TaskType.ensure_network,
                host,
                NetworkPayload(stack=name, network=NetworkSpec(name=f"{name}-net")),
            ),
            host,
        )
        yield name
        observed = (await executor.observe([host], name))[host.id]
        for container in observed.containers:
            delete = DeletePayload(
                docker_name=container.docker_name, container_id=container.id, stop_timeout=0
            )
            await executor.run(task(TaskType.delete, host, delete), host)
        await executor.run(
            task(TaskType.remove_network, host, RemoveNetworkPayload(stack=name, name=f"{name}-net")), host
        )

    async def containers(self, executor: Executor, host: Host, stack: str) -> list[ObservedContainer]:
        observed = (await executor.observe([host], stack))[host.id]
        assert observed.error is None, observed.error
        return observed.containers

    async def deploy(
        self, executor: Executor, host: Host, container: DesiredContainer, **kw: Any
    ) -> dict[str, Any]:
        return await executor.run(task(TaskType.deploy, host, DeployPayload(container=container), **kw), host)

    async def replace(
        self, executor: Executor, host: Host, old_id: str, new: DesiredContainer
    ) -> dict[str, Any]:
        payload = ReplacePayload(container=new, old_container_id=old_id)
        return await executor.run(task(TaskType.replace, host, payload), host)


class ExecutorContract(ExecutorFixtures):
    """Behaviour shared by all executors; see the module docstring for the fixtures it needs."""

    # -- deploy and observe --------------------------------------------------------------------

    async def test_deploy_creates_the_container_as_specified(
        self, executor: Executor, host: Host, stack: str, free_port: int, published_ip: str
    ) -> None:
        web = desired(
            stack,
            "web",
            host,
            command=SERVE_MSG,
            environment={"MSG": "hello-v1", "MODE": "test"},
            ports=[{"containerPort": 80, "hostPort": free_port, "hostIP": published_ip}],
            restartPolicy={"name": "on-failure", "maximumRetryCount": 3},
            resources={"limits": {"cpus": 0.5, "memory": "64M"}, "reservations": {"memory": "32M"}},
        )
        result = await self.deploy(executor, host, web)

        assert result["dockerName"] == f"{stack}-web"
        assert result["containerId"]
        assert result["health"] == "none"
        assert await http_get(published_ip, free_port) == "hello-v1"

        [seen] = await self.containers(executor, host, stack)
        assert (seen.id, seen.docker_name, seen.stack, seen.name, seen.host) == (
            result["containerId"],
            f"{stack}-web",
            stack,
            "web",
            host.id,
        )
        assert seen.spec_hash == "test:1"
        assert seen.field_hashes == web.field_hashes
        live = seen.live
        assert live.state == "running"
        assert live.health is None
        assert live.image == WEB_1
        assert {"MSG=hello-v1", "MODE=test"} <= set(live.env)
        assert live.port_bindings == [f"80/tcp->{published_ip}:{free_port}"]
        assert (live.restart_policy.name, live.restart_policy.maximum_retry_count) == ("on-failure", 3)
        assert live.nano_cpus == 500_000_000
        assert live.memory == 64 * 1024**2
        assert live.memory_reservation == 32 * 1024**2
        assert live.networks == [f"{stack}-net"]

    async def test_observe_filters_by_stack_and_lists_networks(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        await self.deploy(executor, host, desired(stack, "solo", host))
        other = (await executor.observe([host], f"{stack}-other"))[host.id]
        assert other.containers == []
        everything = (await executor.observe([host], None))[host.id]
        assert f"{stack}-solo" in {c.docker_name for c in everything.containers}
        mine = (await executor.observe([host], stack))[host.id]
        assert mine.networks == [f"{stack}-net"]

    async def test_containers_reach_each_other_by_name_on_the_stack_network(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        await self.deploy(executor, host, desired(stack, "db", host))
        client = desired(
            stack,
            "app",
            host,
            command=["sleep", "300"],
            healthCheck={"test": ["CMD-SHELL", "wget -q -O /dev/null http://db:80/"], **FAST_HEALTH},
        )
        result = await self.deploy(executor, host, client)
        assert result["health"] == "healthy"

    async def test_redeploy_over_a_leftover_of_the_same_container(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        first = await self.deploy(executor, host, desired(stack, "web", host, spec_hash="test:old"))
        again = await self.deploy(executor, host, desired(stack, "web", host, spec_hash="test:old"))
        assert again["containerId"] == first["containerId"]  # same spec, running: adopted
        fresh = await self.deploy(executor, host, desired(stack, "web", host, spec_hash="test:new"))
        assert fresh["containerId"] != first["containerId"]
        [seen] = await self.containers(executor, host, stack)
        assert (seen.id, seen.spec_hash) == (fresh["containerId"], "test:new")

    @pytest.mark.parametrize("restart", ["no", "always"])
    async def test_deploy_of_a_container_that_exits_fails_with_its_exit_code_and_logs(
        self, executor: Executor, host: Host, stack: str, restart: str
    ) -> None:
        crash = desired(
            stack,
            "crash",
            host,
            command=["sh", "-c", "echo it-broke; exit 3"],
            restartPolicy={"name": restart},
        )
        with pytest.raises(ExecutionError) as failure:
            await self.deploy(executor, host, crash)
        message = str(failure.value)
        assert "code 3" in message and "it-broke" in message and host.id in message
        assert await self.containers(executor, host, stack) == []

    # -- replace -------------------------------------------------------------------------------

    async def _deploy_v1(
        self, executor: Executor, host: Host, stack: str, port: int, ip: str
    ) -> tuple[DesiredContainer, str]:
        web = desired(
            stack,
            "web",
            host,
            command=SERVE_MSG,
            environment={"MSG": "v1"},
            ports=[{"containerPort": 80, "hostPort": port, "hostIP": ip}],
        )
        result = await self.deploy(executor, host, web)
        assert await http_get(ip, port) == "v1"
        return web, str(result["containerId"])

    async def test_replace_swaps_the_container(
        self, executor: Executor, host: Host, stack: str, free_port: int, published_ip: str
    ) -> None:
        web, old_id = await self._deploy_v1(executor, host, stack, free_port, published_ip)
        new = changed(web, "test:2", image=WEB_2, environment={"MSG": "v2"})
        result = await self.replace(executor, host, old_id, new)

        assert result["containerId"] != old_id
        assert result["dockerName"] == f"{stack}-web"
        assert await http_get(published_ip, free_port) == "v2"
        [seen] = await self.containers(executor, host, stack)
        assert (seen.id, seen.docker_name, seen.spec_hash) == (
            result["containerId"],
            f"{stack}-web",
            "test:2",
        )
        assert seen.live.image == WEB_2
        assert "MSG=v2" in seen.live.env

    @pytest.mark.parametrize(
        "breakage",
        [
            pytest.param({"command": ["sh", "-c", "echo no-start; exit 7"]}, id="exits-at-once"),
            pytest.param(
                {"healthCheck": {"test": ["CMD-SHELL", "echo probe-failed; exit 1"], **FAST_HEALTH}},
                id="unhealthy",
            ),
        ],
    )
    async def test_failed_replace_rolls_back_to_the_old_container(
        self,
        executor: Executor,
        host: Host,
        stack: str,
        free_port: int,
        published_ip: str,
        breakage: dict[str, Any],
    ) -> None:
        web, old_id = await self._deploy_v1(executor, host, stack, free_port, published_ip)
        broken = changed(web, "test:broken", **breakage)

        with pytest.raises(ExecutionError) as failure:
            await self.replace(executor, host, old_id, broken)
        message = str(failure.value)
        assert "rolled back" in message
        assert ("code 7" in message and "no-start" in message) or "probe-failed" in message

        assert await http_get(published_ip, free_port) == "v1"
        [seen] = await self.containers(executor, host, stack)
        assert (seen.id, seen.docker_name, seen.live.state) == (old_id, f"{stack}-web", "running")

    async def test_replace_of_a_vanished_container_deploys_the_new_one(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        old = await self.deploy(executor, host, desired(stack, "web", host))
        await executor.run(task(TaskType.delete, host, DeletePayload(docker_name=f"{stack}-web")), host)
        result = await self.replace(
            executor, host, old["containerId"], desired(stack, "web", host, spec_hash="t:2")
        )
        [seen] = await self.containers(executor, host, stack)
        assert seen.id == result["containerId"]

    # -- delete, start -------------------------------------------------------------------------

    async def test_delete_removes_and_a_gone_container_counts_as_removed(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        created = await self.deploy(executor, host, desired(stack, "web", host))
        payload = DeletePayload(
            docker_name=f"{stack}-web", container_id=created["containerId"], stop_timeout=5
        )
        first = await executor.run(task(TaskType.delete, host, payload), host)
        assert first["removed"] is True
        assert await self.containers(executor, host, stack) == []
        again = await executor.run(task(TaskType.delete, host, payload), host)
        assert again["removed"] is False
        by_name = DeletePayload(docker_name=f"{stack}-never-existed")
        assert (await executor.run(task(TaskType.delete, host, by_name), host))["removed"] is False

    async def test_start_restarts_a_stopped_container_and_waits_for_health(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        web = desired(stack, "web", host, healthCheck={"http": {"port": 80}, **FAST_HEALTH})
        created = await self.deploy(executor, host, web)
        stop = DeletePayload(docker_name=web.docker_name, container_id=created["containerId"], stop_timeout=1)
        await executor.run(task(TaskType.stop, host, stop), host)
        [seen] = await self.containers(executor, host, stack)
        assert seen.live.state == "exited"
        start = StartPayload(
            container_id=created["containerId"], docker_name=web.docker_name, health_check=True
        )
        result = await executor.run(task(TaskType.start, host, start), host)
        assert result["health"] == "healthy"

    # -- images --------------------------------------------------------------------------------

    async def test_pull_policy_never_with_a_missing_image_fails_clearly(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        missing = f"graphium-test/absent-{uuid.uuid4().hex[:6]}:1"
        web = desired(stack, "web", host, image=missing, pull_policy=PullPolicy.never)
        with pytest.raises(ExecutionError) as failure:
            await self.deploy(executor, host, web)
        message = str(failure.value)
        assert missing in message and "never" in message and host.id in message
        assert await self.containers(executor, host, stack) == []

    async def test_pull_policy_if_not_present_does_not_pull_a_present_image(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        # graphium-test images exist in no registry: a pull attempt would fail the task
        for policy in (PullPolicy.if_not_present, PullPolicy.never):
            result = await self.deploy(
                executor, host, desired(stack, f"web-{policy.value}", host, pull_policy=policy)
            )
            assert result["pulled"] is False

    async def test_pull_policy_always_pulls_and_reports_a_failed_pull(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        unreachable = "127.0.0.1:9/graphium-test/web:1"  # a registry address nothing listens on
        web = desired(stack, "web", host, image=unreachable, pull_policy=PullPolicy.always)
        with pytest.raises(ExecutionError) as failure:
            await self.deploy(executor, host, web)
        assert "pulling image" in str(failure.value) and unreachable in str(failure.value)
        assert await self.containers(executor, host, stack) == []

    # -- health gating -------------------------------------------------------------------------

    async def test_a_passing_health_check_is_healthy_when_the_task_completes(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        web = desired(stack, "web", host, healthCheck={"http": {"port": 80}, **FAST_HEALTH})
        result = await self.deploy(executor, host, web)
        assert result["health"] == "healthy"
        [seen] = await self.containers(executor, host, stack)
        assert seen.live.health == "healthy"

    async def test_a_failing_health_check_fails_the_task_with_the_health_log(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        web = desired(stack, "web", host, healthCheck={"tcp": {"port": 81}, **FAST_HEALTH})
        started = time.monotonic()
        with pytest.raises(ExecutionError) as failure:
            await self.deploy(executor, host, web)
        assert time.monotonic() - started < 10  # fails fast, long before the task timeout
        message = str(failure.value)
        assert "unhealthy" in message and "exit code 1" in message
        assert await self.containers(executor, host, stack) == []

    async def test_health_wait_is_bounded_by_the_task_timeout(
        self, executor: Executor, host: Host, stack: str
    ) -> None:
        slow = desired(stack, "web", host, healthCheck={"test": ["CMD", "false"], "interval": "30s"})
        with pytest.raises(ExecutionError) as failure:
            await self.deploy(executor, host, slow, timeout=1.5)
        assert "not running and healthy" in str(failure.value)

    # -- networks ------------------------------------------------------------------------------

    async def test_network_ensure_and_remove_are_idempotent(self, executor: Executor, host: Host) -> None:
        name = f"ct{uuid.uuid4().hex[:8]}"
        ensure = NetworkPayload(stack=name, network=NetworkSpec(name=f"{name}-net", labels={"team": "qa"}))
        first = await executor.run(task(TaskType.ensure_network, host, ensure), host)
        second = await executor.run(task(TaskType.ensure_network, host, ensure), host)
        assert (first["created"], second["created"]) == (True, False)
        assert (await executor.observe([host], name))[host.id].networks == [f"{name}-net"]
        remove = RemoveNetworkPayload(stack=name, name=f"{name}-net")
        gone = await executor.run(task(TaskType.remove_network, host, remove), host)
        again = await executor.run(task(TaskType.remove_network, host, remove), host)
        assert (gone["removed"], again["removed"]) == (True, False)
        assert (await executor.observe([host], name))[host.id].networks == []
