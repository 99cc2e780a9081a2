"""Holding a new container to its health for a while: a rolling update's ``monitor`` window.

A container that passes its first health check may still crash a few seconds later (a bad config
read lazily, a leak, a dependency it only calls under load); a rollout that moved on at once would
replace every replica with it. :func:`hold_healthy` watches the container for ``seconds`` after it
became healthy and fails, saying what it saw, when it stops running, restarts or turns unhealthy.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from graphium.docker.observed import crash_report, last_health
from graphium.errors import EngineError

__all__ = ["POLL_SECONDS", "Inspectable", "hold_healthy"]

POLL_SECONDS = 0.5


class Inspectable(Protocol):
    @property
    def host_id(self) -> str: ...

    async def inspect_or_none(self, name_or_id: str) -> dict[str, Any] | None: ...


def _trouble(info: dict[str, Any] | None, restarts: int) -> str | None:
    """What is wrong with the container now, or None while it runs (and is not unhealthy)."""
    if info is None:
        return "it was removed"
    state = info.get("State") or {}
    health = state.get("Health") or None
    if state.get("Status") != "running" or int(info.get("RestartCount") or 0) > restarts:
        return crash_report(state, "")
    if health is not None and health.get("Status") == "unhealthy":
        return f"it turned unhealthy: {last_health(health)}"
    return None


async def hold_healthy(
    engine: Inspectable, container_id: str, seconds: float, poll: float = POLL_SECONDS
) -> None:
    """Return once the container kept running (and, with a health check, never turned unhealthy)
    for ``seconds``; raise :class:`EngineError` naming what happened otherwise."""
    if seconds <= 0:
        return
    loop = asyncio.get_running_loop()
    start = loop.time()
    end = start + seconds
    first = await engine.inspect_or_none(container_id)
    restarts = int((first or {}).get("RestartCount") or 0)
    name = str((first or {}).get("Name", container_id)).lstrip("/")
    info = first
    while True:
        problem = _trouble(info, restarts)
        if problem is not None:
            raise EngineError(
                f"container {name} did not stay healthy for the {seconds:g}s monitor window "
                f"({loop.time() - start:.1f}s in): {problem}",
                host=engine.host_id,
            )
        left = end - loop.time()
        if left <= 0:
            return
        await asyncio.sleep(min(poll, left))
        info = await engine.inspect_or_none(container_id)
