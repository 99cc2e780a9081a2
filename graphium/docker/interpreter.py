"""The one interpreter of task types and payloads on a container engine.

The local executor, the SSH executor and the agents all hand their tasks to :func:`execute`, so a
task means the same thing whichever way it reaches its host. :data:`HANDLERS` maps each task type
to the handler of its typed payload (the model :data:`graphium.plan.payloads.PAYLOADS` names for
that type), so adding a task type is one payload model and one handler.

Timeouts: ``execute`` budgets ``task.timeout_seconds`` for the waits it controls (health gating,
and therefore the rollback of a replace), so that a slow container fails with a message quoting its
health instead of a bare cancellation. Calls that cannot be bounded from here (an image pull) are
left to the caller, which wraps the whole task in ``asyncio.wait_for`` as the hard stop; a replace
cancelled that way still rolls back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from graphium.docker import rolling
from graphium.docker.protocol import ContainerEngine
from graphium.errors import ExecutionError, ValidationError
from graphium.plan import payloads
from graphium.records.task import Task, TaskType
from graphium.stack.models import ContainerSpec
from graphium.stack.secrets import SECRET_VALUES_KEY, redact_text, secret_values

__all__ = ["HANDLERS", "execute"]

Result = dict[str, Any]


@dataclass(frozen=True)
class _Run:
    """One task's execution: the engine, the task, and the deadline of its waits."""

    engine: ContainerEngine
    task: Task
    deadline: float

    @property
    def host(self) -> str:
        return self.engine.host_id

    def remaining(self) -> float:
        return max(0.0, self.deadline - asyncio.get_running_loop().time())


async def _deploy(run: _Run, payload: payloads.DeployPayload) -> Result:
    engine, desired = run.engine, payload.container
    pulled = await engine.ensure_image(desired.spec.image, desired.pull_policy)
    created = await engine.create_and_start(desired)
    try:
        health = await engine.wait_running_and_healthy(created["containerId"], run.remaining())
    except BaseException:
        # remove it so a re-apply creates it afresh; the error already quotes its logs/health
        if not created["adopted"]:
            await asyncio.shield(engine.remove(created["containerId"], stop_timeout=0))
        raise
    return {**created, "health": health, "pulled": pulled["pulled"]}


async def _replace(run: _Run, payload: payloads.ReplacePayload) -> Result:
    desired, step = payload.container, payload.rollout
    if step is not None and step.delay:  # a rolling update's pause between batches
        await asyncio.sleep(min(step.delay, run.remaining()))
    # the image first: a pull failure must not touch the running container
    pulled = await run.engine.ensure_image(desired.spec.image, desired.pull_policy)
    if step is None:
        replaced = await run.engine.replace(payload.old_container_id, desired, run.remaining())
    else:
        replaced = await rolling.replace_step(
            run.engine, payload.old_container_id, desired, run.remaining(), step
        )
    return {**replaced, "pulled": pulled["pulled"]}


async def _restore(run: _Run, payload: payloads.RestorePayload) -> Result:
    return await rolling.restore_container(run.engine, payload, run.remaining())


async def _delete(run: _Run, payload: payloads.DeletePayload) -> Result:
    removed = await run.engine.remove(payload.container_id or payload.docker_name, payload.stop_timeout)
    return {**_names(run, payload), "removed": removed}


async def _stop(run: _Run, payload: payloads.DeletePayload) -> Result:
    await run.engine.stop(payload.container_id or payload.docker_name, payload.stop_timeout)
    return _names(run, payload)


def _names(run: _Run, payload: payloads.DeletePayload) -> Result:
    return {"dockerName": payload.docker_name, "containerId": payload.container_id, "hostId": run.host}


async def _start(run: _Run, payload: payloads.StartPayload) -> Result:
    await run.engine.start(payload.container_id)
    health = await run.engine.wait_running_and_healthy(payload.container_id, run.remaining())
    return {
        "containerId": payload.container_id,
        "dockerName": payload.docker_name,
        "hostId": run.host,
        "health": health,
    }


async def _restart(run: _Run, payload: payloads.StartPayload) -> Result:
    await run.engine.stop(payload.container_id)
    return await _start(run, payload)


async def _ensure_network(run: _Run, payload: payloads.NetworkPayload) -> Result:
    return await run.engine.ensure_network(payload)


async def _remove_network(run: _Run, payload: payloads.RemoveNetworkPayload) -> Result:
    return await run.engine.remove_network(payload.name)


async def _ensure_volume(run: _Run, payload: payloads.VolumePayload) -> Result:
    return await run.engine.ensure_volume(payload)


async def _remove_volume(run: _Run, payload: payloads.VolumePayload) -> Result:
    return await run.engine.remove_volume(payload.name)


# Each handler takes the payload model PAYLOADS names for its type (a unit test holds them to it).
Handler = Callable[[_Run, Any], Awaitable[Result]]
HANDLERS: Mapping[TaskType, Handler] = {
    TaskType.deploy: _deploy,
    TaskType.replace: _replace,
    TaskType.delete: _delete,
    TaskType.stop: _stop,
    TaskType.start: _start,
    TaskType.restart: _restart,
    TaskType.ensure_network: _ensure_network,
    TaskType.remove_network: _remove_network,
    TaskType.restore: _restore,
    TaskType.ensure_volume: _ensure_volume,
    TaskType.remove_volume: _remove_volume,
}


async def execute(engine: ContainerEngine, task: Task) -> Result:
    """Run ``task`` on ``engine``'s host; return the task's result; raise ExecutionError on failure.

    Every error names the host and the task.
    """
    try:
        return await _execute(engine, task)
    except ExecutionError as exc:
        # errors quote container logs and health output, which may print the container's secrets
        detail = redact_text(exc.detail, _secret_values(task))
        raise type(exc)(detail, host=exc.host or engine.host_id, task=task.id) from exc


async def _execute(engine: ContainerEngine, task: Task) -> Result:
    kind, host = task.task_type, engine.host_id
    handler = HANDLERS.get(kind)
    if handler is None:
        raise ExecutionError(
            f"task type {kind.value} is not supported on a Docker engine", host=host, task=task.id
        )
    try:
        payload = payloads.parse_payload(kind, task.payload)
    except ValidationError as exc:
        listed = "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
        raise ExecutionError(f"invalid {kind.value} payload: {listed}", host=host, task=task.id) from exc
    deadline = asyncio.get_running_loop().time() + task.timeout_seconds
    return await handler(_Run(engine, task, deadline), payload)


def _secret_values(task: Task) -> set[str]:
    """The secret values of the task's container (its secret environment values, and the values
    of sensitive variables its payload lists), to mask in anything it reports.

    Read from the raw payload, so that they are masked even when the rest of it is invalid.
    """
    listed = task.payload.get(SECRET_VALUES_KEY)
    found = {v for v in listed if isinstance(v, str) and v} if isinstance(listed, list) else set()
    container = task.payload.get("container")
    if not isinstance(container, dict):
        return found
    try:
        return found | secret_values(ContainerSpec.model_validate(container.get("spec", {})))
    except PydanticValidationError:
        return found
