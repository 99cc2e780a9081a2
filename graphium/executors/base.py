"""The executor interface: how the runner reaches hosts, whatever the transport.

An executor observes hosts (one list/inspect round per host) and runs single tasks on them. The
local and SSH executors hand each task to :func:`graphium.docker.interpreter.execute` on the host's
:class:`~graphium.docker.protocol.ContainerEngine` (a :class:`~graphium.docker.engine.DockerEngine`
they reach directly or through an SSH tunnel); the agent executor hands tasks to agents through the
store or the server. :class:`HostRouter` sends each host to the
executor for its ``connection``, so one plan can span local, SSH and agent hosts.
"""

from __future__ import annotations

from typing import Any, Protocol

from graphium.plan.model import ObservedHost
from graphium.records.task import Task
from graphium.stack.models import Host


class Executor(Protocol):
    async def observe(self, hosts: list[Host], stack: str | None) -> dict[str, ObservedHost]:
        """Each host's graphium-managed containers (of ``stack``, or all when None).

        Never raises for one unreachable host: its :class:`ObservedHost` carries ``error``.
        """
        ...

    async def run(self, task: Task, host: Host) -> dict[str, Any]:
        """Run one task on ``host``; return its result; raise ExecutionError on failure."""
        ...

    async def close(self) -> None:
        """Release connections (idempotent)."""
        ...
