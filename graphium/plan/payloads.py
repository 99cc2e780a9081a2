"""Task payloads: the contract between whoever creates a task and whoever executes it.

The planner writes them, ``POST /api/v1/tasks`` accepts them, executors and agents read them. A
task record keeps its payload as plain JSON (stores stay generic and fast); :data:`PAYLOADS` maps
each task type to its payload model, and :func:`parse_payload` turns a record's payload into that
model or into problems with JSON paths. Stop shares delete's payload; restart shares start's;
remove-volume shares ensure-volume's.

A network is always named in a payload (the planner names it, applying the stack's default), so an
executor never has to work out a default name of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator
from pydantic import ValidationError as PydanticValidationError

from graphium.errors import Problem, ValidationError
from graphium.plan.model import DesiredContainer, _Data, _name_of
from graphium.records.task import Task, TaskType
from graphium.stack.jsonld import json_path_of
from graphium.stack.models import FailureAction, NetworkSpec, UpdateOrder


class DeployPayload(_Data):
    """deploy: ensure the image (pull policy), create and start; complete once running and healthy.

    ``secret_values`` are the values of sensitive variables the container holds, which whoever
    runs the task masks in what it reports (errors, events, logs)."""

    container: DesiredContainer
    secret_values: list[str] = []


class RolloutStep(_Data):
    """A replace task's place in a rolling update (:mod:`graphium.plan.rollout`) and the policy it
    carries out: wait ``delay`` first, swap in ``order``, hold health for ``monitor`` seconds, and
    with ``keep_old`` leave the old container set aside (stopped) so that the whole rollout can be
    rolled back; a later task of the plan removes it once every batch is done."""

    container: str  # the declared container being rolled out
    batch: int = Field(ge=1)
    batches: int = Field(ge=1)
    order: UpdateOrder = "stop-first"
    failure_action: FailureAction = "rollback"
    delay: float = Field(default=0.0, ge=0)
    monitor: float = Field(default=0.0, ge=0)
    keep_old: bool = False


class ReplacePayload(_Data):
    """replace: start the new container in place of the old one, restoring the old one on failure."""

    container: DesiredContainer
    old_container_id: str
    rollout: RolloutStep | None = None
    secret_values: list[str] = []  # as DeployPayload's


class RestorePayload(_Data):
    """restore: remove the container a rolling update's replace created and give its name back to
    the old one it kept aside (``old_container_id``), started and healthy again."""

    name: str  # the instance ("web-2")
    docker_name: str
    old_container_id: str
    new_container_id: str | None = None
    stop_timeout: float = 10.0
    secret_values: list[str] = []  # the replaced container's, masked in what the restore reports


class DeletePayload(_Data):
    """delete: stop (with timeout) and remove; a container already gone counts as removed."""

    docker_name: str
    container_id: str | None = None
    stop_timeout: float = 10.0


class StartPayload(_Data):
    """start: start a stopped container (drift), then wait for health like deploy."""

    container_id: str
    docker_name: str
    health_check: bool = False


class NetworkPayload(_Data):
    """ensure-network: create the stack's bridge network (``network.name`` is set) if absent."""

    stack: str
    network: NetworkSpec

    @field_validator("network")
    @classmethod
    def _named(cls, network: NetworkSpec) -> NetworkSpec:
        if not network.name:
            raise ValueError("name must be set: a task names the network it creates")
        return network

    @property
    def name(self) -> str:
        return _name_of(self.network)


class RemoveNetworkPayload(_Data):
    """remove-network: remove the stack's network; absent counts as removed."""

    stack: str
    name: str


class VolumePayload(_Data):
    """ensure-volume: create the stack-owned volume ``name`` (``<stack>-<volume>``) if absent,
    labelled as the stack's; remove-volume: remove it, absent counting as removed."""

    stack: str
    volume: str  # the volume's name in the stack file
    name: str  # its Docker name
    driver: str | None = None


TaskPayload = (
    DeployPayload
    | ReplacePayload
    | DeletePayload
    | StartPayload
    | NetworkPayload
    | RemoveNetworkPayload
    | RestorePayload
    | VolumePayload
)

PAYLOADS: Mapping[TaskType, type[TaskPayload]] = {
    TaskType.deploy: DeployPayload,
    TaskType.replace: ReplacePayload,
    TaskType.delete: DeletePayload,
    TaskType.stop: DeletePayload,
    TaskType.start: StartPayload,
    TaskType.restart: StartPayload,
    TaskType.ensure_network: NetworkPayload,
    TaskType.remove_network: RemoveNetworkPayload,
    TaskType.restore: RestorePayload,
    TaskType.ensure_volume: VolumePayload,
    TaskType.remove_volume: VolumePayload,
}


def created_container(task: Task) -> DesiredContainer | None:
    """The container a deploy or replace task creates; None for other task types, and for a
    payload that does not fit (no container of this stack's planner, so nothing to show or place)."""
    if task.task_type not in (TaskType.deploy, TaskType.replace):
        return None
    try:
        payload = PAYLOADS[task.task_type].model_validate(task.payload)
    except PydanticValidationError:
        return None
    assert isinstance(payload, DeployPayload | ReplacePayload)
    return payload.container


def payload_problems(
    task_type: TaskType, payload: Any, *, file: str = "<task>", path: str = "$.payload"
) -> list[Problem]:
    """What is wrong with ``payload`` for a task of ``task_type``, each problem at its JSON path."""
    try:
        PAYLOADS[task_type].model_validate(payload)
    except PydanticValidationError as exc:
        return _problems(exc, file, path)
    return []


def parse_payload(task_type: TaskType, payload: Any, *, file: str = "<task>") -> TaskPayload:
    """The typed payload of a task of ``task_type``; raises ValidationError naming every problem."""
    try:
        return PAYLOADS[task_type].model_validate(payload)
    except PydanticValidationError as exc:
        raise ValidationError(_problems(exc, file, "$.payload")) from None


def _problems(exc: PydanticValidationError, file: str, path: str) -> list[Problem]:
    """pydantic's errors as problems at JSON paths; the offending values are left out, since a
    payload may carry secrets."""
    problems = []
    for error in exc.errors(include_url=False):
        problems.append(Problem(file=file, path=json_path_of(path, error["loc"]), message=error["msg"]))
    return problems


__all__ = [
    "PAYLOADS",
    "DeletePayload",
    "DeployPayload",
    "NetworkPayload",
    "RemoveNetworkPayload",
    "ReplacePayload",
    "RestorePayload",
    "RolloutStep",
    "StartPayload",
    "TaskPayload",
    "VolumePayload",
    "created_container",
    "parse_payload",
    "payload_problems",
]
