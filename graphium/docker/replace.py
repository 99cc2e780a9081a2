"""Replacing a container with rollback: the one sequence of a ``replace`` task.

Written against the few engine operations it needs (:class:`Swappable`), so the order of steps and
what is undone when one fails read in one place, apart from how each call reaches Docker.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass
from typing import Any, Protocol

from graphium.docker.monitor import hold_healthy
from graphium.errors import EngineError, GraphiumError
from graphium.plan.model import DesiredContainer

__all__ = ["Swappable", "error_detail", "replace_container", "short_id"]


def short_id(container_id: str) -> str:
    return container_id[:12]


def error_detail(exc: BaseException) -> str:
    """An error's message without the ``host X:`` prefix the caller's message already carries."""
    text = str(exc)
    host = getattr(exc, "host", None)
    prefix = f"host {host}: "
    return text[len(prefix) :] if host and text.startswith(prefix) else text or type(exc).__name__


class Swappable(Protocol):
    """The engine operations a replace is made of."""

    @property
    def host_id(self) -> str: ...

    async def inspect_or_none(self, name_or_id: str) -> dict[str, Any] | None: ...

    async def stop(self, name_or_id: str, stop_timeout: float = 10.0) -> bool: ...

    async def rename(self, container_id: str, new_name: str) -> None: ...

    async def start(self, container_id: str) -> None: ...

    async def force_remove(self, name_or_id: str) -> bool: ...

    async def create_and_start(self, desired: DesiredContainer) -> dict[str, Any]: ...

    async def wait_running_and_healthy(self, container_id: str, timeout: float) -> str: ...


@dataclass(frozen=True)
class _Old:
    """The container being replaced, as it was before the replace touched it."""

    id: str
    name: str
    was_running: bool


async def replace_container(
    engine: Swappable,
    old_id: str,
    desired: DesiredContainer,
    timeout: float,
    *,
    monitor: float = 0.0,
    keep_old: bool = False,
) -> dict[str, Any]:
    """Swap ``old_id`` for a container made from ``desired``, or restore the old one.

    The old container is stopped first (it may hold the host ports and volumes the new one
    needs) and renamed aside so the new one can take its name. If the new one fails to be
    created, to start, or to become healthy within ``timeout`` (or the task is cancelled), it is
    removed and the old one gets its name back and is started again; the error says so.
    A rolling update adds a ``monitor`` window the new one must stay healthy for, and may
    ``keep_old`` set aside (stopped) for a rollback of the whole rollout, instead of removing it.
    Every undo step is shielded from cancellation, so an interrupt or a timeout at any await
    leaves the service with a running container: the old one or the new one.
    """
    name = desired.docker_name
    old = await _set_aside(engine, old_id, desired)
    try:
        created = await engine.create_and_start(desired)
        health = await engine.wait_running_and_healthy(created["containerId"], timeout)
        await hold_healthy(engine, created["containerId"], monitor)
    except BaseException as exc:
        if old is None:
            await asyncio.shield(engine.force_remove(name))
            raise
        problem = await asyncio.shield(_roll_back(engine, name, old))
        if isinstance(exc, asyncio.CancelledError):
            raise
        outcome = (
            f"rolled back to the previous container {short_id(old.id)}"
            if problem is None
            else f"and rolling back to {short_id(old.id)} failed too: {problem}"
        )
        raise EngineError(
            f"replacing {name} failed: {error_detail(exc)}; {outcome}", host=engine.host_id
        ) from exc
    result = {**created, "health": health, "replaced": None}
    if old is not None:
        result["replaced"] = old.id
        if keep_old:
            return {**result, "keptOld": old.id}
        try:
            await engine.force_remove(old.id)
        except EngineError as exc:  # the new container runs: report rather than fail
            result["warning"] = error_detail(exc)
    return result


async def _set_aside(engine: Swappable, old_id: str, desired: DesiredContainer) -> _Old | None:
    """Stop the old container and rename it out of the way; None when it is gone already (the
    replace is then a plain deploy)."""
    info = await engine.inspect_or_none(old_id)
    if info is None:
        return None
    old = _Old(
        id=str(info["Id"]),
        name=str(info.get("Name", desired.docker_name)).lstrip("/"),
        was_running=bool((info.get("State") or {}).get("Running")),
    )
    try:
        if old.was_running:
            stop_timeout = (info.get("Config") or {}).get("StopTimeout")
            if stop_timeout is None:
                stop_timeout = math.ceil(desired.spec.stop_timeout)
            if not await engine.stop(old.id, float(stop_timeout)):
                return None  # removed meanwhile
        aside = f"{desired.docker_name}-replaced-{short_id(old.id)}"
        if old.name != aside:  # not set aside already by a replace that was interrupted
            await engine.rename(old.id, aside)
    except BaseException:  # cancelled mid-stop too: the engine may finish the stop in its thread
        if old.was_running:
            await asyncio.shield(_restore_quietly(engine, old))
        raise
    return old


async def _roll_back(engine: Swappable, name: str, old: _Old) -> str | None:
    """Remove whatever holds ``name`` now and give it back to the old container; returns the
    problem when that fails."""
    try:
        await engine.force_remove(name)
        await engine.rename(old.id, old.name)
        if old.was_running:
            await engine.start(old.id)
    except GraphiumError as exc:
        return error_detail(exc)
    return None


async def _restore_quietly(engine: Swappable, old: _Old) -> None:
    """Give the old container its name back (if the rename got through) and start it again."""
    with contextlib.suppress(GraphiumError):
        info = await engine.inspect_or_none(old.id)
        if info is not None and str(info.get("Name", "")).lstrip("/") != old.name:
            await engine.rename(old.id, old.name)
        await engine.start(old.id)
