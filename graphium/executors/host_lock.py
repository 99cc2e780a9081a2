"""Holding a stack's lock on every host an apply may touch (see :mod:`graphium.docker.locks`).

Locks are taken in host order (two runs never wait on each other crosswise), each retried until
``wait`` runs out, and a lock whose holder is provably dead is taken over at once. Agent hosts are
skipped: their tasks go through the control server, which runs one stack at a time. A host that
cannot be reached is skipped too: the plan then refuses it with its own message.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

from graphium.docker.locks import lock_holder, release_lock, take_lock
from graphium.errors import GraphiumError, HostUnreachableError, LockedError
from graphium.executors.base import Executor
from graphium.executors.owner import Owner, provably_dead
from graphium.executors.router import HostRouter
from graphium.stack.models import Connection, Host

if TYPE_CHECKING:
    from graphium.docker.engine import DockerEngine

__all__ = ["host_engine", "host_locks", "release_host_locks"]

POLL_SECONDS = 0.5


async def host_engine(executor: Executor, host: Host) -> DockerEngine | None:
    """The engine the executor drives ``host`` through, or None (an agent host)."""
    if host.connection is Connection.agent:
        return None
    from graphium.docker.engine import DockerEngine  # docker-py: only once an engine is reached

    target = executor.executor_for(host) if isinstance(executor, HostRouter) else executor
    getter = getattr(target, "engine", None)
    if getter is None:
        return None
    engine = getter(host)
    if inspect.isawaitable(engine):
        engine = await engine
    return engine if isinstance(engine, DockerEngine) else None


def _who(owner: str) -> str:
    parsed = Owner.parse(owner)
    return parsed.describe() if parsed else owner


async def _take(engine: DockerEngine, stack: str, owner: str, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        held = await take_lock(engine, stack, owner)
        if held is None:
            return
        if provably_dead(held):
            await release_lock(engine, stack, held)
            continue
        if time.monotonic() >= deadline:
            raise LockedError(
                f"stack {stack} is locked on host {engine.host_id} by {_who(held)}: another apply or "
                f"destroy runs (perhaps with another state file). Wait with --lock-wait SECONDS; if that "
                f"process is gone, run `graphium-run unlock {stack}` with the same inventory"
            )
        await asyncio.sleep(POLL_SECONDS)


@contextlib.asynccontextmanager
async def host_locks(
    executor: Executor, hosts: Iterable[Host], stack: str, owner: str, *, wait: float = 0.0
) -> AsyncIterator[None]:
    """Hold the stack's lock on each host while the block runs; released after, even on error."""
    taken: list[DockerEngine] = []
    try:
        for host in sorted(hosts, key=lambda h: h.id):
            try:
                engine = await host_engine(executor, host)
                if engine is None:
                    continue
                await _take(engine, stack, owner, wait)
            except HostUnreachableError:
                continue
            taken.append(engine)
        yield
    finally:
        for engine in taken:
            with contextlib.suppress(GraphiumError):
                await asyncio.shield(release_lock(engine, stack, owner))


async def release_host_locks(executor: Executor, hosts: Iterable[Host], stack: str) -> list[tuple[str, str]]:
    """Remove the stack's lock from every host whoever holds it (``graphium-run unlock``): the
    hosts released, each with who held the lock."""
    out: list[tuple[str, str]] = []
    for host in sorted(hosts, key=lambda h: h.id):
        engine = await host_engine(executor, host)
        held = await lock_holder(engine, stack) if engine is not None else None
        if engine is not None and held is not None and await release_lock(engine, stack, None):
            out.append((host.id, _who(held)))
    return out
