"""Waiting for a started container to be running and, with a health check, healthy.

A container without a health check must stay up for the engine's settle window, so that a command
that exits at once fails its task instead of slipping through between ``start`` and the first
look. The wait subscribes to the engine's event stream (:mod:`.watch`), spends the window
listening for the container's ``die`` (which cuts it short), then inspects once: that inspect,
at the window's end as the polls' last one was, is what decides (an event may arrive late on a
busy machine; the state never does). A health check is then waited on its ``health_status``
events (with a slow safety poll). Whenever the stream is not there (it
failed to open, or broke), the wait polls with inspects every ``poll_interval``, as it always did.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from graphium.docker.observed import crash_report, last_health
from graphium.docker.watch import ContainerEvents, Subscription
from graphium.errors import EngineError

__all__ = ["HEALTH_POLL", "wait_running_and_healthy"]

HEALTH_POLL = 1.0  # seconds between inspects of a health check waited on through events


class _Engine(Protocol):
    host_id: str
    settle_seconds: float
    poll_interval: float

    async def inspect(self, name_or_id: str) -> dict[str, Any]: ...

    async def log_tail(self, container_id: str) -> str: ...


async def wait_running_and_healthy(
    engine: _Engine, events: ContainerEvents, container_id: str, timeout: float
) -> str:
    """``healthy`` or ``none`` (no health check) once the container is up; EngineError quoting the
    exit code and log tail, or the last health output, when it exits, restarts or turns
    unhealthy, or is not there by ``timeout``."""
    loop = asyncio.get_running_loop()
    started = loop.time()  # callers wait right after starting: the settle window counts from here
    subscription = await events.subscribe(container_id)
    try:
        return await _wait(engine, subscription, container_id, started, started + timeout, timeout)
    finally:
        if subscription is not None:
            subscription.close()


async def _wait(
    engine: _Engine,
    subscription: Subscription | None,
    container_id: str,
    started: float,
    deadline: float,
    timeout: float,
) -> str:
    loop = asyncio.get_running_loop()
    settled_at = started + engine.settle_seconds
    restarts: int | None = None
    died = False
    if subscription is not None and subscription.intact:  # the window first: a die cuts it short
        died = await subscription.next(settled_at - loop.time()) == "die"
    while True:
        info = await engine.inspect(container_id)
        name = str(info.get("Name", container_id)).lstrip("/")
        state = info.get("State") or {}
        status = state.get("Status", "")
        health = state.get("Health") or None
        restart_count = int(info.get("RestartCount") or 0)
        restarts = restart_count if restarts is None else restarts
        if died or status in ("exited", "dead", "restarting") or restart_count > restarts:
            logs = await engine.log_tail(container_id)
            raise EngineError(f"container {name} {crash_report(state, logs)}", host=engine.host_id)
        if status == "running" and health is not None:
            if health.get("Status") == "healthy":
                return "healthy"
            if health.get("Status") == "unhealthy":
                raise EngineError(
                    f"container {name} is unhealthy: {last_health(health)}", host=engine.host_id
                )
        settling = status == "running" and health is None
        if settling and loop.time() >= settled_at:
            return "none"
        if loop.time() >= deadline:
            waited = (
                f"health {health.get('Status')}, last check: {last_health(health)}"
                if health
                else f"state {status}"
            )
            raise EngineError(
                f"container {name} not running and healthy after {timeout:g}s ({waited})", host=engine.host_id
            )
        wake = min(deadline, settled_at) if settling else deadline
        listening = subscription is not None and subscription.intact
        if not listening:
            wake = min(wake, loop.time() + engine.poll_interval)
        elif not settling:  # a health check (or an odd state): events, and a slow look now and then
            wake = min(wake, loop.time() + (HEALTH_POLL if health is not None else engine.poll_interval))
        if listening and subscription is not None:
            died = await subscription.next(wake - loop.time()) == "die"
        else:
            await asyncio.sleep(max(0.0, wake - loop.time()))
