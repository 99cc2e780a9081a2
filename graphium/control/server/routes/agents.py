"""Agent routes: registration and the agents' list, a host's open tasks, claims (long-polls),
and the agent's report of its host."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import TypeAdapter

from graphium.control.server.auth import Principal
from graphium.control.server.deps import API, Caller, Srv, json_body, own_host
from graphium.control.server.routes.tasks import LeaseRequest
from graphium.control.server.state import Server
from graphium.plan.model import ObservedHost
from graphium.records.agent import AgentInfo, AgentRecord
from graphium.records.task import Task, TaskStatus
from graphium.run.events import EventType, task_event
from graphium.store.memory import parse_time

MAX_CLAIM_WAIT = 30.0
MAX_CLAIM_BATCH = 100  # tasks per claim: an agent asks for as many as it has free slots
OPEN = frozenset({TaskStatus.pending, TaskStatus.assigned, TaskStatus.running})

router = APIRouter(prefix=API, tags=["agents"])
_TASK_LIST = TypeAdapter(list[Task])
_AGENT_LIST = TypeAdapter(list[AgentInfo])


@router.get("/agents", response_model=list[AgentInfo])
def list_agents(who: Caller, srv: Srv) -> Response:
    """Every agent known, live or down (an agent token sees its own host's), with its version,
    slots, engine version, the tasks it holds and when it was last seen."""
    agents = srv.agents.list(host_id=None if who.is_admin else who.host_id)
    return json_body(_AGENT_LIST.dump_json(agents, by_alias=True))


@router.put("/agents/{host_id}/registration", response_model=AgentRecord)
def register_agent(host_id: str, body: AgentRecord, who: Caller, srv: Srv) -> Response:
    """An agent starting up says who it is; any later claim, heartbeat or report keeps it live."""
    own_host(who, host_id)
    if body.host_id != host_id:
        raise HTTPException(400, f"the registration is for host {body.host_id!r}, not {host_id!r}")
    return json_body(srv.agents.register(body).model_dump_json(by_alias=True))


@router.get("/agents/{host_id}/tasks", response_model=list[Task])
def agent_tasks(host_id: str, who: Caller, srv: Srv) -> list[Task]:
    """The host's open tasks (pending, assigned, running)."""
    own_host(who, host_id)
    return [t for t in srv.store.list_tasks(host_id=host_id) if t.status in OPEN]


@dataclass(frozen=True)
class ClaimRequest:
    """What both claim routes are asked: whose tasks, for which agent and lease, how long to wait
    and whether to start them at once."""

    srv: Server
    host_id: str
    body: LeaseRequest
    who: Principal
    request: Request
    wait: float
    start: bool


async def claim_request(
    host_id: str,
    body: LeaseRequest,
    who: Caller,
    srv: Srv,
    request: Request,
    wait: Annotated[float, Query(ge=0, le=MAX_CLAIM_WAIT)] = 0.0,
    start: bool = False,
) -> ClaimRequest:
    return ClaimRequest(srv, host_id, body, who, request, wait, start)


Claim = Annotated[ClaimRequest, Depends(claim_request)]


async def take(ask: ClaimRequest, limit: int) -> list[Task]:
    """Claim up to ``limit`` of the host's runnable tasks, waiting up to ``wait`` s for the
    first (long-poll); whatever is claimable then is returned, without waiting to fill up.

    The wait ends on a change to the host's tasks (see :mod:`..changes`) or when a pending task's
    backoff runs out, never on a timer of its own, so an idle long-poll costs nothing."""
    own_host(ask.who, ask.host_id)
    with ask.srv.agents.polling(ask.host_id, ask.body.agent_id):
        return await _take(ask, limit)


async def _take(ask: ClaimRequest, limit: int) -> list[Task]:
    srv, host_id, body = ask.srv, ask.host_id, ask.body
    store = srv.store
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ask.wait

    def attempt() -> tuple[list[Task], float | None]:
        """The tasks claimed, or else how long until a pending task's backoff ends."""
        with store.batch():
            tasks = store.claim_many(host_id, body.agent_id, body.lease_seconds, limit, start=ask.start)
            if tasks:
                srv.emit(*(task_event(EventType.task_updated, t) for t in tasks))
                return tasks, None
        return [], _until_due(store.list_tasks(host_id=host_id, status=TaskStatus.pending))

    def give_back(tasks: list[Task]) -> None:
        with store.batch():
            for task in tasks:
                back = store.transition(task.id, TaskStatus.pending, agent_id=body.agent_id)
                srv.emit(task_event(EventType.task_updated, back))

    hangup = asyncio.ensure_future(_hang_up(ask.request))
    try:
        while True:
            version = srv.feed.host_version(host_id)
            tasks, due = await asyncio.to_thread(attempt)
            await asyncio.sleep(0)  # read a hang-up that arrived meanwhile
            if tasks and hangup.done():
                await asyncio.to_thread(give_back, tasks)
                return []
            remaining = deadline - loop.time()
            if tasks or remaining <= 0 or hangup.done():
                return tasks
            timeout = remaining if due is None else min(remaining, due)
            change = asyncio.ensure_future(srv.feed.wait_host(host_id, version, timeout))
            await asyncio.wait({change, hangup}, return_when=asyncio.FIRST_COMPLETED)
            change.cancel()
    finally:
        hangup.cancel()


def _until_due(pending: list[Task]) -> float | None:
    """Seconds until the first backoff among ``pending`` ends (None when none is backing off)."""
    now = datetime.now(UTC)
    waits = [(parse_time(t.not_before) - now).total_seconds() for t in pending if t.not_before is not None]
    ahead = [w for w in waits if w > 0]
    return min(ahead) + 0.01 if ahead else None


async def _hang_up(request: Request) -> None:
    """Return once the caller of a long-poll hangs up (an agent that stopped or died): it must
    not be handed tasks, which would sit under its lease until the lease expired, nor count as
    live. Its body was read already, so the next ASGI message is the disconnect."""
    message = await request.receive()
    while message.get("type") == "http.request" and message.get("more_body"):
        message = await request.receive()
    if message.get("type") != "http.disconnect":
        await asyncio.Event().wait()  # cannot tell: never


@router.post(
    "/agents/{host_id}/claim",
    response_model=Task,
    responses={204: {"description": "nothing became claimable within `wait` seconds"}},
)
async def claim(ask: Claim) -> Response:
    """Take the host's best runnable task, waiting up to ``wait`` s for one (long-poll).

    ``start=true`` makes it ``running`` at once, for an agent that starts it right away.
    """
    tasks = await take(ask, 1)
    if not tasks:
        return Response(status_code=204)
    return json_body(tasks[0].model_dump_json(by_alias=True))


@router.post("/agents/{host_id}/claims", response_model=list[Task])
async def claim_many(
    ask: Claim, max_tasks: Annotated[int, Query(alias="max", ge=1, le=MAX_CLAIM_BATCH)] = 1
) -> Response:
    """Take up to ``max`` of the host's runnable tasks in one durable write, best first.

    Long-polls like ``/claim`` but answers a list, empty after ``wait`` s. ``start=true``
    makes them ``running`` at once: an agent asks for as many as it has free slots.
    """
    tasks = await take(ask, max_tasks)
    return json_body(_TASK_LIST.dump_json(tasks, by_alias=True))


@router.put("/agents/{host_id}/observed", status_code=204)
def report_observed(host_id: str, body: ObservedHost, who: Caller, srv: Srv) -> Response:
    """The agent's view of its host's graphium-managed containers, used to plan stacks."""
    own_host(who, host_id)
    if body.host != host_id:
        raise HTTPException(400, f"the report is about host {body.host!r}, not {host_id!r}")
    srv.store.save_observation(body)
    srv.touch(host_id, None)
    return Response(status_code=204)


__all__ = ["router"]
