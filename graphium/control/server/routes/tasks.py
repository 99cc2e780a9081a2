"""Task routes: enqueue, list, read, report status changes, retry, cancel, heartbeat."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic.alias_generators import to_camel

from graphium.control.server.deps import API, Admin, Caller, Srv, json_body, own_task
from graphium.control.server.state import Server
from graphium.errors import GraphiumError, NotFoundError, StoreError, TransitionError, ValidationError
from graphium.plan.payloads import payload_problems
from graphium.plan.task_forms import expand_container_form, is_container_form
from graphium.records.event import Event
from graphium.records.task import Task, TaskStatus, utcnow
from graphium.run.events import EventType, task_event
from graphium.stack.jsonld import json_path
from graphium.stack.secrets import redact_payload

MAX_REPORT_BATCH = 1000  # status changes per batch report

router = APIRouter(prefix=API, tags=["tasks"])


def refuse_non_finite(data: Any) -> Any:
    """JSON has no NaN or Infinity, but Python's parser reads them: refuse them anywhere in a body
    (a stored NaN lease or timeout would break the store's arithmetic, and JSON answers)."""

    def walk(value: Any, path: str) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{path}: numbers must be finite (JSON has no NaN or Infinity)")
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, json_path(path, str(key)))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, json_path(path, index))

    walk(data, "$")
    return data


class _Body(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", allow_inf_nan=False
    )

    _finite = model_validator(mode="before")(refuse_non_finite)


class TaskCreate(Task):
    """A new task; ``id`` is generated when absent, and a new task always starts pending."""

    model_config = ConfigDict(allow_inf_nan=False)

    id: str | None = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    timeout_seconds: float = Field(default=300.0, gt=0)

    _finite = model_validator(mode="before")(refuse_non_finite)


def masked(task: Task) -> Task:
    """The task with the secrets of its payload masked: what every answer shows, except the
    claim that hands the task to its agent."""
    if not task.payload:
        return task
    return task.model_copy(update={"payload": redact_payload(task.payload)})


class StatusUpdate(_Body):
    status: TaskStatus
    error: str | None = None
    result: dict[str, Any] | None = None
    agent_id: str | None = Field(default=None, min_length=1, max_length=200)


class StatusReport(StatusUpdate):
    """One entry of a batch report: the task and its change."""

    id: str = Field(min_length=1, max_length=200)


class ReportResult(_Body):
    """How one entry of a batch report went; ``code`` is what the single-task route would answer."""

    id: str
    code: int
    status: TaskStatus | None = None  # the task's status after the change
    detail: str | None = None


class LeaseRequest(_Body):
    agent_id: str = Field(min_length=1, max_length=200)
    lease_seconds: float = Field(default=30.0, gt=0, le=3600)


_RESULTS = TypeAdapter(list[ReportResult])
_REPEATABLE = frozenset({TaskStatus.running, TaskStatus.completed, TaskStatus.failed})


def report(srv: Server, task_id: str, change: StatusUpdate) -> tuple[Task, bool]:
    """Apply an agent's status report; ``(task, changed)``. A report the store already holds (the
    same agent's same running/completed/failed) is answered as done, unchanged: an agent whose
    report reached a server that died before answering sends it again, maybe to another replica,
    and must hear that it landed rather than that the task is no longer its own."""
    try:
        task = srv.store.transition(
            task_id, change.status, error=change.error, result=change.result, agent_id=change.agent_id
        )
    except TransitionError:
        current = srv.store.get_task(task_id)
        if (
            change.agent_id is None
            or current.status is not change.status
            or change.status not in _REPEATABLE
            or current.agent_id != change.agent_id
        ):
            raise
        return current, False
    return task, True


def changed(srv: Server, kind: EventType, update: Callable[[], Task]) -> Task:
    """Apply a task change and record its event in one durable write."""
    with srv.store.batch():
        task = update()
        srv.emit(task_event(kind, task))
    return task


@router.post(
    "/tasks",
    status_code=201,
    response_model=Task,
    responses={400: {"description": "the payload does not fit the task type; `problems` lists why"}},
)
def create_task(body: TaskCreate, _: Admin, srv: Srv) -> Task:
    """Enqueue one task (for hosts whose agent should run something outside a stack).

    The payload must fit the task type (400 with ``problems`` at JSON paths otherwise). A deploy
    may also be given in the original task API's form, ``{"containerSpec": {...}, "pullPolicy":
    ...}``: it is read by the stack files' rules and stored as graphium's deploy payload, after
    the ensure-network task it depends on (see :mod:`graphium.plan.task_forms`). The answer is
    the stored task, secrets masked.
    """
    if body.status is not TaskStatus.pending:
        raise HTTPException(400, "a new task starts pending; set its status through the status route")
    data = body.model_dump(exclude={"id"})
    task = Task.model_validate({**data, "id": body.id or f"task-{uuid.uuid4().hex}"})
    task = task.model_copy(
        update={
            "agent_id": None,
            "date_created": utcnow(),
            "assigned_at": None,
            "started_at": None,
            "completed_at": None,
            "lease_expires_at": None,
        }
    )
    if is_container_form(task.task_type, task.payload):
        new_tasks = expand_container_form(task, file="request")  # [ensure-network, the deploy]
    else:
        problems = payload_problems(task.task_type, task.payload, file="request")
        if problems:
            raise ValidationError(problems)
        new_tasks = [task]
    with srv.store.batch():
        srv.store.create_tasks(new_tasks)
        srv.emit(*(task_event(EventType.task_created, t) for t in new_tasks))
    return masked(new_tasks[-1])


@router.get("/tasks", response_model=list[Task])
def list_tasks(
    who: Caller,
    srv: Srv,
    status: TaskStatus | None = None,
    stack_id: Annotated[str | None, Query(alias="stackId")] = None,
    host_id: Annotated[str | None, Query(alias="hostId")] = None,
    agent_id: Annotated[str | None, Query(alias="agentId")] = None,
    run_id: Annotated[str | None, Query(alias="runId")] = None,
) -> list[Task]:
    """Tasks matching every filter given, secrets masked; an agent token sees only its own host's."""
    if not who.is_admin:
        host_id = who.host_id
    tasks = srv.store.list_tasks(status=status, stack_id=stack_id, host_id=host_id, run_id=run_id)
    return [masked(t) for t in tasks if agent_id is None or t.agent_id == agent_id]


@router.get("/tasks/stats")
def task_stats(
    _: Admin, srv: Srv, stack_id: Annotated[str | None, Query(alias="stackId")] = None
) -> dict[str, int]:
    """``{"total": n, "pending": n, ...}`` over every status."""
    return srv.store.stats(stack_id=stack_id)


@router.get("/tasks/{task_id}", response_model=Task)
def get_task(task_id: str, who: Caller, srv: Srv) -> Task:
    """The task, secrets masked (only the claim that hands it to its agent carries them)."""
    return masked(own_task(srv, who, task_id))


@router.put("/tasks/status", response_model=list[ReportResult])
def report_statuses(
    body: Annotated[list[StatusReport], Body(max_length=MAX_REPORT_BATCH)], who: Caller, srv: Srv
) -> Response:
    """Report many status changes in one durable write (an agent's finished tasks).

    Each entry succeeds or fails on its own; its result carries the code the single-task
    route would have answered (403 for another host's task, 404, 409 with the reason).
    """
    store = srv.store
    if not who.is_admin:
        srv.touch(who.host_id or "", next((i.agent_id for i in body if i.agent_id), None))
    results: list[ReportResult] = []
    events: list[Event] = []
    with store.batch():
        for item in body:
            try:
                if not who.may_access_host(store.get_task(item.id).host_id):
                    detail = f"this token is bound to host {who.host_id}"
                    results.append(ReportResult(id=item.id, code=403, detail=detail))
                    continue
                task, fresh = report(srv, item.id, item)
            except NotFoundError as exc:
                results.append(ReportResult(id=item.id, code=404, detail=str(exc)))
            except (TransitionError, StoreError) as exc:
                results.append(ReportResult(id=item.id, code=409, detail=str(exc)))
            except GraphiumError as exc:
                results.append(ReportResult(id=item.id, code=400, detail=str(exc)))
            else:
                results.append(ReportResult(id=item.id, code=200, status=task.status))
                if fresh:
                    events.append(task_event(EventType.task_updated, task))
        if events:
            srv.emit(*events)
    return json_body(_RESULTS.dump_json(results, by_alias=True, exclude_none=True))


@router.put("/tasks/{task_id}/status", response_model=Task)
def update_status(task_id: str, body: StatusUpdate, who: Caller, srv: Srv) -> Response:
    """Report progress: 409 with the reason when the lifecycle or the lease forbids the change."""
    own_task(srv, who, task_id)
    if not who.is_admin:
        srv.touch(who.host_id or "", body.agent_id)
    with srv.store.batch():
        task, fresh = report(srv, task_id, body)
        if fresh:
            srv.emit(task_event(EventType.task_updated, task))
    return json_body(masked(task).model_dump_json(by_alias=True))


@router.post("/tasks/{task_id}/retry", response_model=Task)
def retry_task(task_id: str, _: Admin, srv: Srv) -> Task:
    """Put a failed or cancelled task back in the queue."""
    task = srv.store.get_task(task_id)
    if task.status not in (TaskStatus.failed, TaskStatus.cancelled):
        raise HTTPException(
            409, f"task {task_id} is {task.status.value}; only failed or cancelled tasks retry"
        )
    return masked(
        changed(
            srv,
            EventType.task_updated,
            lambda: srv.store.transition(task_id, TaskStatus.pending, expected=task.status),
        )
    )


@router.post("/tasks/{task_id}/cancel", response_model=Task)
def cancel_task(task_id: str, _: Admin, srv: Srv) -> Task:
    """Cancel a task; an agent running it learns so when its next heartbeat is refused."""
    reason = "cancelled by an administrator"
    return masked(
        changed(
            srv,
            EventType.task_updated,
            lambda: srv.store.transition(task_id, TaskStatus.cancelled, error=reason),
        )
    )


@router.post("/tasks/{task_id}/heartbeat", response_model=Task)
def heartbeat(task_id: str, body: LeaseRequest, who: Caller, srv: Srv) -> Response:
    """Extend the lease the agent holds; 409 once it no longer holds it (stop reporting then)."""
    task = own_task(srv, who, task_id)
    srv.touch(task.host_id, body.agent_id)
    extended = srv.store.heartbeat(task_id, body.agent_id, body.lease_seconds)
    return json_body(masked(extended).model_dump_json(by_alias=True))


__all__ = [
    "LeaseRequest",
    "ReportResult",
    "StatusReport",
    "StatusUpdate",
    "TaskCreate",
    "masked",
    "refuse_non_finite",
    "report",
    "router",
]
