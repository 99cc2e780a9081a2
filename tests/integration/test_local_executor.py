"""LocalExecutor against the lab's real engine: the executor contract, plus what only a local
engine lets a test check directly (labels, mounts, health check config, unreachable hosts)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import docker
import pytest

from graphium.errors import ExecutionError
from graphium.executors.local import LocalExecutor
from graphium.plan.payloads import DeletePayload, DeployPayload, NetworkPayload, ReplacePayload
from graphium.records.task import TaskType
from graphium.stack.models import Host, NetworkSpec
from tests.contract.executor_contract import FAST_HEALTH, ExecutorContract, ExecutorFixtures, desired, task

pytestmark = pytest.mark.docker


@pytest.fixture
async def executor() -> AsyncIterator[LocalExecutor]:
    local = LocalExecutor(observe_timeout=5.0)
    yield local
    await local.close()


@pytest.fixture
def host(docker_url: str) -> Host:
    return Host.model_validate({"@id": "local", "connection": "local", "dockerHost": docker_url})


@pytest.fixture
def client(docker_url: str) -> Any:
    api = docker.APIClient(base_url=docker_url, version="auto")
    yield api
    api.close()


class TestLocalExecutorContract(ExecutorContract):
    pass


class TestLocalEngineDetails(ExecutorFixtures):
    """Checks through docker-py itself, which only a local engine allows."""

    async def test_a_replace_cancelled_by_the_runner_timeout_still_rolls_back(
        self, executor: LocalExecutor, host: Host, stack: str, client: Any
    ) -> None:
        old = await self.deploy(executor, host, desired(stack, "web", host))
        never_healthy = desired(
            stack, "web", host, spec_hash="test:2", healthCheck={"test": ["CMD", "false"], "interval": "60s"}
        )
        replace = task(
            TaskType.replace,
            host,
            ReplacePayload(container=never_healthy, old_container_id=old["containerId"]),
        )
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(executor.run(replace, host), 2.0)
        info = client.inspect_container(f"{stack}-web")
        assert info["Id"] == old["containerId"] and info["State"]["Running"]
        names = [
            c["Names"][0] for c in client.containers(all=True, filters={"label": f"graphium.stack={stack}"})
        ]
        assert names == [f"/{stack}-web"]

    async def test_create_sets_labels_mounts_health_user_workdir_and_alias(
        self, executor: LocalExecutor, host: Host, stack: str, client: Any, tmp_path: Any
    ) -> None:
        web = desired(
            stack,
            "web",
            host,
            labels={"team": "qa", "graphium.stack": "spoofed"},
            command=["httpd", "-f", "-p", "8080", "-h", "/www"],
            args=["-v"],
            mounts=[
                {"type": "bind", "source": str(tmp_path), "target": "/host", "readOnly": True},
                {"type": "volume", "source": "data", "target": "/data"},  # the stack's own: {stack}-data
                {"type": "tmpfs", "target": "/scratch"},
            ],
            user="1000:1000",
            workingDir="/www",
            stopTimeout=3,
            healthCheck={"tcp": {"port": 8080}, **FAST_HEALTH},
        )
        result = await self.deploy(executor, host, web)
        info = client.inspect_container(result["containerId"])
        labels = info["Config"]["Labels"]
        assert labels.items() >= web.labels().items()  # the image may add its own
        assert labels["graphium.stack"] == stack and labels["team"] == "qa"
        assert labels["graphium.managed"] == "true" and labels["graphium.host"] == "local"
        assert info["Name"] == f"/{stack}-web"
        assert info["Config"]["Cmd"] == ["httpd", "-f", "-p", "8080", "-h", "/www", "-v"]
        assert info["Config"]["User"] == "1000:1000"
        assert info["Config"]["WorkingDir"] == "/www"
        assert info["Config"]["StopTimeout"] == 3
        health = info["Config"]["Healthcheck"]
        assert web.spec.health_check is not None
        assert health["Test"] == web.spec.health_check.docker_test()
        assert health["Interval"] == 200_000_000 and health["Retries"] == 2
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        assert mounts["/host"]["Type"] == "bind" and mounts["/host"]["RW"] is False
        assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == f"{stack}-data"
        assert info["HostConfig"]["Mounts"][2]["Type"] == "tmpfs"
        endpoint = info["NetworkSettings"]["Networks"][f"{stack}-net"]
        assert "web" in endpoint["Aliases"]
        delete = DeletePayload(docker_name=web.docker_name, stop_timeout=0)
        await executor.run(task(TaskType.delete, host, delete), host)
        client.remove_volume(f"{stack}-data")

    async def test_a_foreign_container_holding_the_name_is_not_touched(
        self, executor: LocalExecutor, host: Host, stack: str, client: Any
    ) -> None:
        foreign = client.create_container("graphium-test/web:1", name=f"{stack}-web")
        try:
            with pytest.raises(ExecutionError, match="not graphium's"):
                await self.deploy(executor, host, desired(stack, "web", host))
            assert client.inspect_container(foreign["Id"])["Id"] == foreign["Id"]
        finally:
            client.remove_container(foreign["Id"], force=True)

    async def test_ipam_settings_reach_the_network(
        self, executor: LocalExecutor, host: Host, client: Any
    ) -> None:
        name = f"ct{uuid.uuid4().hex[:8]}"
        third = int(uuid.uuid4().int % 200) + 20
        spec = NetworkSpec(
            name=f"{name}-net",
            subnet=f"10.199.{third}.0/24",
            gateway=f"10.199.{third}.1",
            ip_range=f"10.199.{third}.128/25",
        )
        await executor.run(
            task(TaskType.ensure_network, host, NetworkPayload(stack=name, network=spec)), host
        )
        try:
            net = client.inspect_network(f"{name}-net")
            assert net["IPAM"]["Config"] == [
                {"Subnet": spec.subnet, "Gateway": spec.gateway, "IPRange": spec.ip_range}
            ]
            assert net["Labels"] == {"graphium.managed": "true", "graphium.stack": name}
        finally:
            client.remove_network(f"{name}-net")


async def test_unreachable_host_is_reported_not_raised_and_quickly(
    executor: LocalExecutor, host: Host
) -> None:
    ghost = Host.model_validate({"@id": "ghost", "dockerHost": "unix:///nonexistent/docker.sock"})
    black_hole = Host.model_validate({"@id": "hole", "dockerHost": "tcp://127.0.0.1:9"})
    started = time.monotonic()
    observed = await executor.observe([host, ghost, black_hole], None)
    assert time.monotonic() - started < 5
    assert observed["local"].error is None
    assert "ghost" in (observed["ghost"].error or "") and "cannot reach" in (observed["ghost"].error or "")
    assert "cannot reach" in (observed["hole"].error or "")
    with pytest.raises(ExecutionError, match="host ghost, task t-"):
        await executor.run(
            task(TaskType.deploy, ghost, DeployPayload(container=desired("x", "y", ghost))), ghost
        )


async def test_the_engine_is_created_once_per_host_and_reused(executor: LocalExecutor, host: Host) -> None:
    assert executor.engine(host) is executor.engine(host)
    ssh = Host.model_validate({"@id": "far", "connection": "ssh", "address": "10.0.0.9"})
    with pytest.raises(ExecutionError, match="local executor cannot reach"):
        executor.engine(ssh)


async def test_a_silent_engine_costs_at_most_the_observe_timeout(host: Host, tmp_path: Any) -> None:
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen()  # accepts connections, never answers
    executor = LocalExecutor(timeout=3.0, observe_timeout=1.0)
    mute = Host.model_validate({"@id": "mute", "dockerHost": f"unix://{tmp_path}/silent.sock"})
    try:
        started = time.monotonic()
        observed = await executor.observe([host, mute], None)
        assert time.monotonic() - started < 2.5
        assert observed["local"].error is None
        assert "did not answer within 1s" in (observed["mute"].error or "")
    finally:
        await executor.close()
        silent.close()
