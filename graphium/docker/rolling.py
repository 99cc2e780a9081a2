"""A rolling update's steps on one host: a replace in its batch's order, and the undo of one.

:func:`replace_step` runs one replace task of a rollout (its payload's
:class:`~graphium.plan.payloads.RolloutStep`): ``stop-first`` is the plain replace of
:mod:`graphium.docker.replace` (old stopped and set aside, new started); ``start-first`` keeps the
old container running, under its aside name, until the new one is healthy and held healthy for the
monitor window, so the service never has a gap on this host; on failure the new one is removed
and the old one, never stopped, gets its name back. With ``keep_old`` the old container stays
aside (stopped) after a success, so that :func:`restore_container` can give it back if a later
batch of the rollout fails.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from graphium.docker.monitor import hold_healthy
from graphium.docker.replace import Swappable, error_detail, replace_container, short_id
from graphium.errors import EngineError, GraphiumError
from graphium.plan.model import DesiredContainer
from graphium.plan.payloads import RestorePayload, RolloutStep

__all__ = ["replace_step", "restore_container"]


async def replace_step(
    engine: Swappable, old_id: str, desired: DesiredContainer, timeout: float, step: RolloutStep
) -> dict[str, Any]:
    """Replace ``old_id`` by ``desired`` as the rollout step says (see the module docstring)."""
    health_budget = max(1.0, timeout - step.monitor)
    if step.order == "start-first":
        info = await engine.inspect_or_none(old_id)
        if info is not None and (info.get("State") or {}).get("Running"):
            return await _start_first(engine, info, desired, health_budget, step)
    return await replace_container(
        engine, old_id, desired, health_budget, monitor=step.monitor, keep_old=step.keep_old
    )


def _stop_timeout(info: dict[str, Any], desired: DesiredContainer) -> float:
    configured = (info.get("Config") or {}).get("StopTimeout")
    return float(configured if configured is not None else math.ceil(desired.spec.stop_timeout))


async def _start_first(
    engine: Swappable, info: dict[str, Any], desired: DesiredContainer, timeout: float, step: RolloutStep
) -> dict[str, Any]:
    name = desired.docker_name
    old_id, old_name = str(info["Id"]), str(info.get("Name", name)).lstrip("/")
    await engine.rename(old_id, f"{name}-replaced-{short_id(old_id)}")  # it keeps serving meanwhile
    try:
        created = await engine.create_and_start(desired)
        health = await engine.wait_running_and_healthy(created["containerId"], timeout)
        await hold_healthy(engine, created["containerId"], step.monitor)
    except BaseException as exc:
        problem = await asyncio.shield(_give_back(engine, name, old_id, old_name))
        if isinstance(exc, asyncio.CancelledError):
            raise
        outcome = (
            f"the previous container {short_id(old_id)} kept running throughout"
            if problem is None
            else f"and giving the name back to {short_id(old_id)} failed: {problem}"
        )
        raise EngineError(
            f"replacing {name} (start-first) failed: {error_detail(exc)}; {outcome}", host=engine.host_id
        ) from exc
    result = {**created, "health": health, "replaced": old_id, "order": "start-first"}
    await engine.stop(old_id, _stop_timeout(info, desired))
    if step.keep_old:
        return {**result, "keptOld": old_id}
    try:
        await engine.force_remove(old_id)
    except EngineError as exc:  # the new container runs: report rather than fail
        result["warning"] = error_detail(exc)
    return result


async def _give_back(engine: Swappable, name: str, old_id: str, old_name: str) -> str | None:
    """Remove whatever new container holds ``name`` and rename the (running) old one back."""
    try:
        await engine.force_remove(name)
        await engine.rename(old_id, old_name)
    except GraphiumError as exc:
        return error_detail(exc)
    return None


async def restore_container(engine: Swappable, payload: RestorePayload, timeout: float) -> dict[str, Any]:
    """Undo one completed replace of a rollout: the new container goes, the kept old one gets its
    name back and runs (and is healthy) again. Idempotent: an old container already restored is
    left running; one that is gone cannot be restored, and the error says so."""
    name, old_id = payload.docker_name, payload.old_container_id
    info = await engine.inspect_or_none(old_id)
    if info is None:
        raise EngineError(
            f"cannot roll {name} back: its previous container {short_id(old_id)} no longer exists",
            host=engine.host_id,
        )
    holder = await engine.inspect_or_none(name)
    if holder is not None and str(holder["Id"]) != str(info["Id"]):
        await engine.stop(str(holder["Id"]), payload.stop_timeout)
        await engine.force_remove(str(holder["Id"]))
    if str(info.get("Name", "")).lstrip("/") != name:
        await engine.rename(old_id, name)
    await engine.start(old_id)
    health = await engine.wait_running_and_healthy(old_id, timeout)
    return {
        "containerId": str(info["Id"]),
        "dockerName": name,
        "hostId": engine.host_id,
        "health": health,
        "removed": None if holder is None else str(holder["Id"]),
    }
