"""Dispatch each host to the executor for its ``connection``, so one apply can mix transports.

The runner talks to a single :class:`HostRouter`; local, SSH and agent hosts of the same stack are
observed concurrently (one group per connection kind) and each task goes to its host's executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from graphium.errors import ExecutionError
from graphium.executors.base import Executor
from graphium.plan.model import ObservedHost
from graphium.records.event import Event
from graphium.records.task import Task
from graphium.stack.models import Connection, Host
from graphium.store.base import TaskStore


class HostRouter:
    """An :class:`Executor` made of one executor per connection kind.

    Executors can be registered later (the agent executor is built only when an inventory has
    agent hosts), or given as ``factories`` that build one the first time a host of its kind
    comes (the SSH executor, and with it asyncssh, is then never imported by a local-only run);
    a host whose kind has none gets a per-host error rather than failing the batch.
    """

    def __init__(
        self,
        executors: Mapping[Connection, Executor],
        factories: Mapping[Connection, Callable[[], Executor]] | None = None,
    ) -> None:
        self._executors: dict[Connection, Executor] = dict(executors)
        self._factories: dict[Connection, Callable[[], Executor]] = dict(factories or {})

    def register(self, connection: Connection, executor: Executor) -> None:
        self._executors[connection] = executor

    @property
    def executors(self) -> Mapping[Connection, Executor]:
        """The executors built so far (a factory's only once a host of its kind was seen)."""
        return dict(self._executors)

    def _get(self, connection: Connection) -> Executor | None:
        executor = self._executors.get(connection)
        if executor is None and connection in self._factories:
            executor = self._executors[connection] = self._factories.pop(connection)()
        return executor

    def executor_for(self, host: Host) -> Executor:
        executor = self._get(host.connection)
        if executor is None:
            raise ExecutionError(
                f"no executor for connection {host.connection.value!r} is configured", host=host.id
            )
        return executor

    async def observe(self, hosts: list[Host], stack: str | None) -> dict[str, ObservedHost]:
        """Observe each connection group in parallel; a group that fails marks only its own hosts."""
        groups: dict[Connection, list[Host]] = {}
        for host in hosts:
            groups.setdefault(host.connection, []).append(host)
        out: dict[str, ObservedHost] = {}
        runnable: list[tuple[Connection, list[Host]]] = []
        for connection, members in groups.items():
            if self._get(connection) is not None:
                runnable.append((connection, members))
            else:
                for host in members:
                    error = f"host {host.id}: no executor for connection {connection.value!r} is configured"
                    out[host.id] = ObservedHost(host=host.id, error=error)
        results = await asyncio.gather(
            *(self._executors[c].observe(members, stack) for c, members in runnable),
            return_exceptions=True,
        )
        for (_, members), result in zip(runnable, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # cancellation and interpreter exits are not per-host errors
                for host in members:
                    error = f"host {host.id}: {type(result).__name__}: {result}"
                    out[host.id] = ObservedHost(host=host.id, error=error)
            else:
                out.update(result)
        # keep the caller's host order, which the planner's output does not depend on but humans read
        return {h.id: out[h.id] for h in hosts if h.id in out}

    async def run(self, task: Task, host: Host) -> dict[str, Any]:
        return await self.executor_for(host).run(task, host)

    async def close(self) -> None:
        """Close every distinct executor (one may serve several kinds), raising the first failure."""
        distinct = list({id(e): e for e in self._executors.values()}.values())
        results = await asyncio.gather(*(e.close() for e in distinct), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


def direct_executors(insecure_skip_host_key_check: bool = False) -> dict[Connection, Callable[[], Executor]]:
    """Factories of the executors that reach hosts themselves (the local engine, SSH), for
    :class:`HostRouter`: each imports its module (docker-py, asyncssh) only when first used."""

    def local() -> Executor:
        from graphium.executors.local import LocalExecutor

        return LocalExecutor()

    def ssh() -> Executor:
        from graphium.executors.ssh import SshExecutor

        return SshExecutor(insecure_skip_host_key_check=insecure_skip_host_key_check)

    return {Connection.local: local, Connection.ssh: ssh}


def default_executor(
    store: TaskStore,
    *,
    insecure_skip_host_key_check: bool = False,
    notify: Callable[[Event], None] | None = None,
) -> Executor:
    """Local, SSH and agent hosts through one router, so one stack may mix them. ``notify``
    receives the agent executor's events (a task waiting for a host without a live agent).

    Each executor is built (and its module imported) when the first host of its kind is met."""

    def agent() -> Executor:
        from graphium.executors.agent import AgentExecutor

        return AgentExecutor(store, notify=notify)

    factories = direct_executors(insecure_skip_host_key_check)
    return HostRouter({}, {**factories, Connection.agent: agent})
