"""What the engine adapter costs the engine: connections and calls per task, on the lab's engine.

The hot path of an apply is a handful of engine requests per container; these tests hold the
adapter to it (a regression shows as more connections or more requests, not as a failure).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from graphium.docker.engine import DockerEngine
from graphium.errors import ExecutionError
from graphium.executors.local import LocalExecutor
from graphium.plan.payloads import DeployPayload
from graphium.records.task import TaskType
from graphium.stack.models import Host
from tests.contract.executor_contract import ExecutorFixtures, desired, task

pytestmark = pytest.mark.docker


@pytest.fixture
async def executor() -> AsyncIterator[LocalExecutor]:
    local = LocalExecutor(observe_timeout=5.0, pool_size=4)
    yield local
    await local.close()


@pytest.fixture
def host(docker_url: str) -> Host:
    return Host.model_validate({"@id": "local", "connection": "local", "dockerHost": docker_url})


def _pools(engine: DockerEngine) -> list[Any]:
    adapter = engine._api()._custom_adapter
    return [adapter.pools[key] for key in adapter.pools.keys()]  # noqa: SIM118 (not iterable)


class TestEngineCalls(ExecutorFixtures):
    async def test_requests_to_many_paths_share_one_pool_of_kept_alive_connections(
        self, executor: LocalExecutor, host: Host, stack: str
    ) -> None:
        for i in range(6):  # one after the other: one connection serves them all
            result = await executor.run(
                task(TaskType.deploy, host, DeployPayload(container=desired(stack, f"c{i}", host))), host
            )
            assert result["health"] == "none"
        engine = executor.engine(host)
        await engine.observe(stack)
        [pool] = _pools(engine)
        # the version probe's own connection is gone with the adapter it used
        assert pool.num_connections <= 2, pool.num_connections
        assert pool.num_requests >= 6 * 3

    async def test_a_deploy_without_health_check_costs_create_start_and_one_inspect(
        self, executor: LocalExecutor, host: Host, stack: str
    ) -> None:
        first = desired(stack, "first", host)
        await executor.run(task(TaskType.deploy, host, DeployPayload(container=first)), host)
        [pool] = _pools(executor.engine(host))
        before = pool.num_requests
        result = await executor.run(
            task(TaskType.deploy, host, DeployPayload(container=desired(stack, "second", host))), host
        )
        assert result["health"] == "none"
        # create, start, one inspect: the settle window listens to the engine's events instead
        assert pool.num_requests - before == 3

    async def test_a_container_dying_inside_the_settle_window_fails_its_deploy(
        self, executor: LocalExecutor, host: Host, stack: str
    ) -> None:
        # up at the first inspect, gone before the window ends: only the die event can tell
        dies = desired(stack, "dies", host, command=["sh", "-c", "sleep 0.15; echo late-exit; exit 4"])
        with pytest.raises(ExecutionError) as failed:
            await executor.run(task(TaskType.deploy, host, DeployPayload(container=dies)), host)
        assert "exited with code 4" in str(failed.value) and "late-exit" in str(failed.value)

    async def test_a_wait_polls_without_the_event_stream(
        self, executor: LocalExecutor, host: Host, stack: str
    ) -> None:
        engine = executor.engine(host)
        await executor.run(
            task(TaskType.deploy, host, DeployPayload(container=desired(stack, "a", host))), host
        )
        engine._events.close()  # the stream is gone (as when the engine restarts): inspects take over
        dies = desired(stack, "dies", host, command=["sh", "-c", "sleep 0.15; exit 5"])
        with pytest.raises(ExecutionError, match="exited with code 5"):
            await executor.run(task(TaskType.deploy, host, DeployPayload(container=dies)), host)
