"""The one interpreter of task types and payloads on a Docker engine.

The local executor, the SSH executor and the agents all hand their tasks to :func:`execute`, so a
task means the same thing whichever way it reaches its host.

Timeouts: ``execute`` budgets ``task.timeout_seconds`` for the waits it controls (health gating,
and therefore the rollback of a replace), so that a slow container fails with a message quoting its
health instead of a bare cancellation. Calls that cannot be bounded from here (an image pull) are
left to the caller, which wraps the whole task in ``asyncio.wait_for`` as the hard stop; a replace
cancelled that way still rolls back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from graphium.docker.engine import DockerEngine
from graphium.errors import ExecutionError
from graphium.plan.payloads import (
    DeletePayload,
    DeployPayload,
    NetworkPayload,
    RemoveNetworkPayload,
    ReplacePayload,
    StartPayload,
)
from graphium.records.task import Task, TaskType
from graphium.stack.models import ContainerSpec
from graphium.stack.secrets import redact_text, secret_values

__all__ = ["execute"]


def _payload(task: Task, model: type[BaseModel], host: str) -> Any:
    try:
        return model.model_validate(task.payload)
    except PydanticValidationError as exc:
        raise ExecutionError(
            f"invalid {task.task_type.value} payload: {exc.errors(include_url=False)}",
            host=host,
            task=task.id,
        ) from exc


async def execute(engine: DockerEngine, task: Task) -> dict[str, Any]:
    """Run ``task`` on ``engine``'s host; return the task's result; raise ExecutionError on failure.

    Every error names the host and the task.
    """
    try:
        return await _execute(engine, task)
    except ExecutionError as exc:
        # errors quote container logs and health output, which may print the container's secrets
        detail = redact_text(exc.detail, _secret_values(task))
        raise type(exc)(detail, host=exc.host or engine.host_id, task=task.id) from exc


def _secret_values(task: Task) -> set[str]:
    """The secret environment values of the task's container, to mask in anything it reports."""
    container = task.payload.get("container")
    if not isinstance(container, dict):
        return set()
    try:
        return secret_values(ContainerSpec.model_validate(container.get("spec", {})))
    except PydanticValidationError:
        return set()


async def _execute(engine: DockerEngine, task: Task) -> dict[str, Any]:
    host = engine.host_id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + task.timeout_seconds

    def remaining() -> float:
        return max(0.0, deadline - loop.time())

    kind = task.task_type
    if kind is TaskType.deploy:
        desired = _payload(task, DeployPayload, host).container
        pulled = await engine.ensure_image(desired.spec.image, desired.pull_policy)
        created = await engine.create_and_start(desired)
        try:
            health = await engine.wait_running_and_healthy(created["containerId"], remaining())
        except BaseException:
            # remove it so a re-apply creates it afresh; the error already quotes its logs/health
            if not created["adopted"]:
                await asyncio.shield(engine.remove(created["containerId"], stop_timeout=0))
            raise
        return {**created, "health": health, "pulled": pulled["pulled"]}
    if kind is TaskType.replace:
        payload = _payload(task, ReplacePayload, host)
        desired = payload.container
        # the image first: a pull failure must not touch the running container
        pulled = await engine.ensure_image(desired.spec.image, desired.pull_policy)
        replaced = await engine.replace(payload.old_container_id, desired, remaining())
        return {**replaced, "pulled": pulled["pulled"]}
    if kind is TaskType.delete:
        delete = _payload(task, DeletePayload, host)
        target = delete.container_id or delete.docker_name
        removed = await engine.remove(target, delete.stop_timeout)
        return {
            "dockerName": delete.docker_name,
            "containerId": delete.container_id,
            "hostId": host,
            "removed": removed,
        }
    if kind in (TaskType.start, TaskType.restart):
        start = _payload(task, StartPayload, host)
        if kind is TaskType.restart:
            await engine.stop(start.container_id)
        await engine.start(start.container_id)
        health = await engine.wait_running_and_healthy(start.container_id, remaining())
        return {
            "containerId": start.container_id,
            "dockerName": start.docker_name,
            "hostId": host,
            "health": health,
        }
    if kind is TaskType.stop:
        stop = _payload(task, DeletePayload, host)
        target = stop.container_id or stop.docker_name
        await engine.stop(target, stop.stop_timeout)
        return {"dockerName": stop.docker_name, "containerId": stop.container_id, "hostId": host}
    if kind is TaskType.ensure_network:
        return await engine.ensure_network(_payload(task, NetworkPayload, host))
    if kind is TaskType.remove_network:
        return await engine.remove_network(_payload(task, RemoveNetworkPayload, host).name)
    raise ExecutionError(
        f"task type {kind.value} is not supported on a Docker engine", host=host, task=task.id
    )
