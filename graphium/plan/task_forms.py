"""The original task API's container form: a deploy task whose payload is ``containerSpec``.

The design note enqueues a container by hand with ``POST /api/v1/tasks`` and
``{"taskType": "deploy", "hostId": ..., "payload": {"containerSpec": {...}, "pullPolicy": ...}}``.
That form is read by the stack files' rules (:func:`graphium.stack.container_form.load_container_form`)
as a one-container stack pinned to the task's host, and expanded by the planner's own
:func:`~graphium.plan.planner.expand`: the tasks are what ``apply`` of that stack would enqueue on
an empty host, an ensure-network task and the deploy (depending on it) with graphium's payloads,
Docker name, labels and spec hash, so the agent runs it like any other deploy.

The stack is the task's ``stackId`` when given, else the container's own name (so the note's
``test-nginx`` runs as ``test-nginx-test-nginx``, the ``<stack>-<container>`` rule of every
graphium container). The server fills no ``${VAR}`` from its own environment: a reference is an
error, as for stacks posted to the server. Replicas, ``dependsOn`` and another ``locatedInHost``
belong to stacks and are refused here (the task's own ``dependsOn`` applies).
"""

from __future__ import annotations

from typing import Any

import pydantic

from graphium.errors import Problem, StackError, ValidationError
from graphium.plan.networks import NETWORK_TIMEOUT
from graphium.plan.payloads import DeployPayload, NetworkPayload
from graphium.plan.planner import expand
from graphium.records.task import Task, TaskType
from graphium.stack.container_form import CONTAINER_LOC, load_container_form
from graphium.stack.document import StackDocument
from graphium.stack.jsonld import json_path
from graphium.stack.models import Host, Inventory, PullPolicy, StackSpec
from graphium.stack.variables import resolve_variables

__all__ = ["FORM_KEY", "expand_container_form", "is_container_form"]

FORM_KEY = "containerSpec"
_FORM_FIELDS = (FORM_KEY, "pullPolicy")
_PAYLOAD = "$.payload"
_PULL = pydantic.TypeAdapter(PullPolicy)


def is_container_form(task_type: TaskType, payload: Any) -> bool:
    """Whether a new task's payload is the note's form rather than graphium's deploy payload."""
    return task_type is TaskType.deploy and isinstance(payload, dict) and FORM_KEY in payload


def expand_container_form(task: Task, *, file: str = "request") -> list[Task]:
    """``[ensure-network, deploy]`` for a task in the container form; the deploy keeps the task's
    id, priority, timeout and ``dependsOn`` (plus the network task). Raises ValidationError with
    every problem at its JSON path in the request."""
    expected = ", ".join(_FORM_FIELDS)
    problems = [
        Problem(file, json_path(_PAYLOAD, key), f"unknown property {key!r}; expected one of: {expected}")
        for key in sorted(set(task.payload) - set(_FORM_FIELDS))
    ]
    stack = _stack(task, file, problems)
    try:
        raw = task.payload[FORM_KEY]
        doc = load_container_form(raw, stack, file=file, path=json_path(_PAYLOAD, FORM_KEY))
    except StackError as exc:
        raise ValidationError([*problems, *exc.problems]) from None
    problems += _stack_only_fields(doc, task.host_id)
    if problems:
        raise ValidationError(problems)
    try:
        resolved = resolve_variables(doc.stack, {}, file, path_of=doc.path_of)
    except StackError as exc:
        raise ValidationError(exc.problems) from None
    inventory = Inventory(hosts=[Host.model_validate({"@id": task.host_id, "connection": "agent"})])
    [desired] = expand(resolved, inventory)
    network = NetworkPayload(stack=desired.stack, network=desired.network)
    net = Task(
        id=f"{task.id}-network",
        task_type=TaskType.ensure_network,
        host_id=task.host_id,
        stack_id=task.stack_id,
        priority=task.priority,
        payload=network.dump(),
        timeout_seconds=NETWORK_TIMEOUT,
        description=f"create network {network.name} on {task.host_id}",
    )
    deploy = task.model_copy(
        update={
            "payload": DeployPayload(container=desired).dump(),
            "depends_on": [*task.depends_on, net.id],
            "description": task.description or f"create {desired.name} on {desired.host}",
        }
    )
    return [net, deploy]


def _stack(task: Task, file: str, problems: list[Problem]) -> StackSpec:
    """The one-container stack the form deploys into: named by ``stackId`` or the container's name,
    pinned to the task's host, with the pull policy given beside ``containerSpec``."""
    pull = PullPolicy.if_not_present
    if "pullPolicy" in task.payload:
        try:
            pull = _PULL.validate_python(task.payload["pullPolicy"])
        except pydantic.ValidationError:
            expected = ", ".join(p.value for p in PullPolicy)
            problems.append(Problem(file, json_path(_PAYLOAD, "pullPolicy"), f"expected one of: {expected}"))
    raw = task.payload.get(FORM_KEY)
    name = task.stack_id or (raw.get("name") if isinstance(raw, dict) else None)
    fields = {"name": name, "locatedInHost": task.host_id, "pullPolicy": pull}
    try:
        return StackSpec.model_validate(fields)
    except pydantic.ValidationError:
        if task.stack_id:  # else the container's name is invalid, which loading it reports
            problems.append(Problem(file, "$.stackId", "a stack name: letters, digits, '_', '.', '-'"))
        return StackSpec.model_validate({**fields, "name": "container"})


def _stack_only_fields(doc: StackDocument, host: str) -> list[Problem]:
    """What a stack means but a single task cannot do."""
    spec = doc.stack.containers[0]
    out: list[Problem] = []

    def refuse(field: str, message: str) -> None:
        out.append(Problem(doc.path, doc.path_of(*CONTAINER_LOC, field), message))

    if spec.replicas != 1:
        refuse("replicas", f"a task deploys one container, not {spec.replicas}; post a stack for replicas")
    if spec.depends_on:
        refuse("dependsOn", "a task orders itself by its own 'dependsOn' (task ids), beside 'payload'")
    if spec.located_in_host not in (None, host):
        refuse("locatedInHost", f"the task runs on its hostId {host!r}, not {spec.located_in_host!r}")
    return out
