"""Stack routes: post a stack document (planned and run in the background), read, delete."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from graphium.control.envelope import posted_stack
from graphium.control.server.deps import API, Admin, Srv
from graphium.control.server.monitor import cancel_open_builds
from graphium.control.server.state import Server
from graphium.errors import NotFoundError
from graphium.executors.owner import provably_dead
from graphium.plan.model import Plan
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import Task, TaskStatus
from graphium.run import lifecycle
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus
from graphium.stack.loader import load_stack_data
from graphium.stack.models import Connection, Host, Inventory

router = APIRouter(prefix=API, tags=["stacks"])


class StackAccepted(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    id: str
    status: StackStatus
    tasks: int
    notes: list[str] = []  # what the plan kept (a destroy's volumes)


POST_STACK_DOC = """Validate, plan and enqueue a stack; the agents deploy it while this returns at once.

The body is either the stack document with its ``${VAR}`` already filled (no version is recorded:
the server cannot tell the secrets among the values), or an envelope ``{"document": <the stack
document as written>, "variables": {"NAME": "value"}}`` (exactly these keys, ``variables``
optional, ``document`` an object): the server then fills the variables at plan time, masks the
secret ones by value in its events, task views and logs, and records the version on success, so
``history`` and ``rollback`` work. A variable the document needs but the envelope lacks is a 400
with ``problems``."""


@router.post(
    "/stacks",
    status_code=202,
    response_model=StackAccepted,
    responses={400: {"description": "the stack document is invalid; `problems` lists why"}},
    description=POST_STACK_DOC,
)
async def post_stack(body: Annotated[dict[str, Any], Body()], _: Admin, srv: Srv) -> Any:
    posted = posted_stack(body)
    doc = load_stack_data(posted.document, "stack")
    name = doc.stack.name
    if srv.active(name):
        raise HTTPException(409, f"stack {name} has a run in progress; wait for it or delete the stack")
    stored = srv.store.get_stack(name)
    if stored is not None and stored.status is StackStatus.deleting:
        raise HTTPException(409, f"stack {name} is being deleted")
    deployer = Deployer(srv.store, srv.executor, srv.inventory(doc), events=EventBus(srv.store))
    plan = await deployer.plan(doc, environ=posted.variables or {})
    if posted.variables is None:
        # a bare document came with its variables filled in by the client, secrets included: it
        # cannot be recorded as a version (which keeps ``${VAR}`` as written), so it records none
        plan.definition, plan.variables = {}, {}
    return accepted(name, await srv.start(deployer, plan), plan)


def accepted(name: str, started: bool, plan: Plan, **more: Any) -> JSONResponse:
    """The answer to a run handed to the server: 202 while it deploys, 200 when nothing was to do."""
    return JSONResponse(
        status_code=202 if started else 200,
        content={
            "id": name,
            "status": (StackStatus.deploying if started else StackStatus.running).value,
            "tasks": len(plan.tasks),
            **more,
        },
    )


@router.get("/stacks")
def list_stacks(_: Admin, srv: Srv) -> list[dict[str, Any]]:
    return [s.public_dump() for s in srv.store.list_stacks()]


@router.get("/stacks/{stack_id}")
def get_stack(stack_id: str, _: Admin, srv: Srv) -> dict[str, Any]:
    """Deployment state: status, phase, progress, placements, every task's status (each with
    its ``runId``: the record's ``runId`` names the current run), and ``waiting``: the hosts
    whose pending tasks cannot start because no agent of theirs is live, and why."""
    store = srv.store
    record = store.get_stack(stack_id)
    if record is None:
        raise NotFoundError(f"stack {stack_id} not found")
    tasks = store.list_tasks(stack_id=stack_id)
    return {
        **record.public_dump(),
        "active": srv.active(stack_id) or run_elsewhere(record),
        "waiting": waiting_hosts(srv, [t for t in tasks if t.run_id == record.run_id]),
        "stats": store.stats(stack_id=stack_id),
        "tasks": [
            {
                "id": t.id,
                "taskType": t.task_type.value,
                "status": t.status.value,
                "hostId": t.host_id,
                "runId": t.run_id,
                "description": t.description,
                "error": t.error,
                "dateCreated": t.date_created,
            }
            for t in tasks
        ],
    }


def run_elsewhere(record: StackRecord) -> bool:
    """Whether another live process runs the stack: another replica of this server, or an apply
    on the same store (it holds the stack's runner lease)."""
    return lifecycle.lease_live(record, datetime.now(UTC)) and not provably_dead(record.runner_owner)


def waiting_hosts(srv: Server, tasks: list[Task]) -> list[dict[str, str]]:
    """``[{hostId, message}]`` for the hosts of pending ``tasks`` that have no live agent."""
    hosts = sorted({t.host_id for t in tasks if t.status is TaskStatus.pending})
    return [{"hostId": h, "message": why} for h, why in srv.agents.waiting_reasons(hosts).items()]


@router.delete("/stacks/{stack_id}", status_code=202, response_model=StackAccepted)
async def delete_stack(stack_id: str, _: Admin, srv: Srv, volumes: bool = False) -> Any:
    """Enqueue deletion tasks; the stack's records go once every container is gone. The stack's
    own volumes are kept (``notes`` names them) unless ``?volumes=true``."""
    record = srv.store.get_stack(stack_id)
    if record is None:
        raise NotFoundError(f"stack {stack_id} not found")
    await srv.stop_run(stack_id)
    await asyncio.to_thread(cancel_open_builds, srv, stack_id, "the stack is being deleted")
    hosts = set(record.hosts) | {str(p.get("hostId")) for p in record.placements.values() if p.get("hostId")}
    known = srv.inventory(None).by_id()
    inventory = Inventory(
        hosts=[
            known.get(h) or Host.model_validate({"@id": h, "connection": Connection.agent.value})
            for h in sorted(hosts)
        ]
    )
    deployer = Deployer(srv.store, srv.executor, inventory, events=EventBus(srv.store))
    plan = await deployer.plan_destroy(stack_id, volumes=volumes)
    await srv.start(deployer, plan)
    return {
        "id": stack_id,
        "status": StackStatus.deleting.value,
        "tasks": len(plan.tasks),
        "notes": plan.notes,
    }


__all__ = ["StackAccepted", "router", "waiting_hosts"]
