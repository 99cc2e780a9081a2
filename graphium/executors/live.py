"""Live reads (``ps``, ``status`` refresh, ``logs``) over the executors' own transports.

Local and SSH hosts are read through the very engine their executor drives (the local socket,
or the socket forwarded over the host's one SSH connection). Agent hosts sit where only their
agent reaches: their reads go through the server's request channel (:mod:`graphium.control`),
so here they get an error saying so. Each host is bounded by ``timeout`` and fails alone.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from graphium.docker.live import LogOptions, list_live, stream_stack_logs
from graphium.errors import ExecutionError, GraphiumError
from graphium.executors.base import Executor
from graphium.executors.router import HostRouter
from graphium.records.live import LiveHost
from graphium.stack.models import Connection, Host

if TYPE_CHECKING:
    from graphium.docker.engine import DockerEngine
    from graphium.executors.ssh import SshExecutor

__all__ = ["host_engine", "live_hosts", "stream_host_logs"]

DEFAULT_TIMEOUT = 15.0


async def host_engine(executor: Executor, host: Host) -> DockerEngine:
    """The engine ``executor`` reaches ``host`` through (local or SSH)."""
    from graphium.executors.local import LocalExecutor  # docker-py: only once an engine is read

    if isinstance(executor, HostRouter):
        executor = executor.executor_for(host)
    if isinstance(executor, LocalExecutor):
        return executor.engine(host)
    ssh = sys.modules.get("graphium.executors.ssh")  # no SshExecutor exists before its module is
    if ssh is not None and isinstance(executor, ssh.SshExecutor):  # imported (with asyncssh)
        ssh_executor: SshExecutor = executor
        return await ssh_executor.engine(host)
    if host.connection is Connection.agent:
        raise ExecutionError(
            f"host {host.id} is an agent host: read it through the server (--server URL)", host=host.id
        )
    raise ExecutionError(f"no live reader for connection {host.connection.value!r}", host=host.id)


async def _one(executor: Executor, host: Host, stack: str | None, timeout: float) -> LiveHost:
    try:
        engine = await asyncio.wait_for(host_engine(executor, host), timeout)
        rows = await asyncio.wait_for(list_live(engine, stack), timeout)
    except TimeoutError:
        return LiveHost(host=host.id, error=f"host {host.id} did not answer within {timeout:g}s")
    except GraphiumError as exc:
        return LiveHost(host=host.id, error=str(exc))
    return LiveHost(host=host.id, containers=rows)


async def live_hosts(
    executor: Executor, hosts: list[Host], stack: str | None, *, timeout: float = DEFAULT_TIMEOUT
) -> list[LiveHost]:
    """Every host's live containers (of ``stack``, or all graphium's), all hosts at once."""
    return list(await asyncio.gather(*(_one(executor, h, stack, timeout) for h in hosts)))


async def stream_host_logs(
    executor: Executor,
    host: Host,
    stack: str,
    container: str | None,
    options: LogOptions,
    emit: Callable[[str], None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Stream the logs of ``stack``'s containers on ``host`` (see :func:`stream_stack_logs`)."""
    engine = await asyncio.wait_for(host_engine(executor, host), timeout)
    return await stream_stack_logs(engine, stack, container, options, emit)
