"""Stack version routes: the versions successful applies recorded, and rolling back to one.

A rollback through the server is planned by the server against its agents' hosts, like a posted
stack, and runs in the background. The server resolves nothing from its own environment: the
version's recorded variables are restored, and the caller sends the values of the others
(secrets) in ``variables``, as ``graphium-run apply --server`` sends them from where it runs
(``variablesNeeded`` in the listing names them).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from graphium.control.server.deps import API, Admin, Srv
from graphium.control.server.routes.stacks import accepted
from graphium.errors import NotFoundError, PlanError
from graphium.records.stack import StackStatus
from graphium.records.version import StackVersion, current_version, rollback_target
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus
from graphium.stack.variables import document_variables

router = APIRouter(prefix=API, tags=["stacks"])


class RollbackRequest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    to: int | None = Field(default=None, ge=1, description="the version; default: the one before")
    variables: dict[str, str] = Field(
        default_factory=dict, description="values of the variables the version does not record"
    )


@router.get("/stacks/{stack_id}/versions")
def list_versions(stack_id: str, _: Admin, srv: Srv) -> list[dict[str, Any]]:
    """The stack's recorded versions, oldest first, each with ``current`` (the one running now),
    ``result``, ``rollbackTarget`` (the one a rollback without ``to`` applies) and
    ``variablesNeeded`` (the names of the variables it uses but does not record: a rollback to it
    sends their values); without its definition or inventory."""
    found = srv.store.list_versions(stack_id)
    record = srv.store.get_stack(stack_id)
    if not found and record is None:
        raise NotFoundError(f"stack {stack_id} not found")
    current = current_version(found, record)
    try:
        target: StackVersion | None = rollback_target(found, record)
    except PlanError:
        target = None
    return [
        {
            **v.public_dump(),
            "current": v is current,
            "result": v.result(),
            "rollbackTarget": v is target,
            "variablesNeeded": [n for n in document_variables(v.definition) if n not in v.variables],
        }
        for v in found
    ]


@router.post(
    "/stacks/{stack_id}/rollback",
    status_code=202,
    responses={409: {"description": "no version to roll back to, or a run in progress"}},
)
async def rollback(
    stack_id: str, _: Admin, srv: Srv, request: Annotated[RollbackRequest | None, Body()] = None
) -> Any:
    """Plan an earlier version of the stack (``to``, or the one before the running version)
    against the agents' hosts and run it in the background, as a posted stack."""
    body = request or RollbackRequest()
    if srv.active(stack_id):
        raise PlanError(f"stack {stack_id} has a run in progress; wait for it or delete the stack")
    record = srv.store.get_stack(stack_id)
    if record is not None and record.status is StackStatus.deleting:
        raise PlanError(f"stack {stack_id} is being deleted")
    target = rollback_target(srv.store.list_versions(stack_id), record, body.to)
    deployer = Deployer(srv.store, srv.executor, srv.inventory(None), events=EventBus(srv.store))
    plan = await deployer.plan_rollback(target, environ=body.variables)
    return accepted(stack_id, await srv.start(deployer, plan), plan, version=target.number)


__all__ = ["RollbackRequest", "router"]
