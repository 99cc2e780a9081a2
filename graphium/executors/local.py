"""The local executor: hosts whose engine this process reaches directly (``connection: local``).

Each host gets one :class:`DockerEngine`, made on first use and kept, so connections are pooled
across tasks. The engine URL is the host's ``dockerHost``, else ``DOCKER_HOST``, else the default
socket, as the inventory contract says.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from graphium.docker.engine import DockerEngine
from graphium.docker.interpreter import execute
from graphium.docker.protocol import ContainerEngine
from graphium.errors import ExecutionError, GraphiumError
from graphium.plan.model import ObservedHost
from graphium.records.task import Task
from graphium.stack.models import DEFAULT_DOCKER_HOST, Connection, Host

__all__ = ["LocalExecutor", "docker_url"]


def docker_url(host: Host, environ: Mapping[str, str] | None = None) -> str:
    """The engine URL for a local host: its ``dockerHost``, else ``DOCKER_HOST``, else the default."""
    env = os.environ if environ is None else environ
    return host.docker_host or env.get("DOCKER_HOST") or DEFAULT_DOCKER_HOST


class LocalExecutor:
    """Runs tasks through engines this process can reach itself."""

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        observe_timeout: float = 20.0,
        pool_size: int = 16,
        settle_seconds: float = 0.3,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """``observe_timeout`` bounds one host's observation, so a dead host costs at most that;
        ``settle_seconds`` is passed to each :class:`DockerEngine`."""
        self.timeout = timeout
        self.observe_timeout = observe_timeout
        self.pool_size = pool_size
        self.settle_seconds = settle_seconds
        self._environ = environ
        self._engines: dict[str, DockerEngine] = {}

    def engine(self, host: Host) -> DockerEngine:
        """The host's engine, created on first use; a changed URL gets a fresh one."""
        if host.connection is not Connection.local:
            raise ExecutionError(
                f"the local executor cannot reach a host with connection '{host.connection.value}'",
                host=host.id,
            )
        url = docker_url(host, self._environ)
        engine = self._engines.get(host.id)
        if engine is None or engine.base_url != url:
            if engine is not None:
                self._retire(engine)
            engine = DockerEngine(
                url,
                host_id=host.id,
                timeout=self.timeout,
                pool_size=self.pool_size,
                settle_seconds=self.settle_seconds,
            )
            self._engines[host.id] = engine
        return engine

    def _retire(self, engine: ContainerEngine) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(engine.close())
            return
        loop.create_task(engine.close()).add_done_callback(lambda t: None if t.cancelled() else t.exception())

    async def observe(self, hosts: list[Host], stack: str | None) -> dict[str, ObservedHost]:
        """All hosts in parallel; a host that fails or exceeds ``observe_timeout`` reports an error."""
        results = await asyncio.gather(*(self._observe_one(host, stack) for host in hosts))
        return {observed.host: observed for observed in results}

    async def _observe_one(self, host: Host, stack: str | None) -> ObservedHost:
        try:
            engine = self.engine(host)
            return await asyncio.wait_for(engine.observe(stack), self.observe_timeout)
        except TimeoutError:
            return ObservedHost(
                host=host.id,
                error=f"host {host.id}: the Docker engine did not answer within {self.observe_timeout:g}s",
            )
        except GraphiumError as exc:
            return ObservedHost(host=host.id, error=str(exc))

    async def run(self, task: Task, host: Host) -> dict[str, Any]:
        return await execute(self.engine(host), task)

    async def close(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        await asyncio.gather(*(engine.close() for engine in engines))
