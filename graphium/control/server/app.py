"""The control server: task API for agents, stack API for people, event stream for watchers.

Everything lives under ``/api/v1`` and works on the same task store as the CLI (a JSON file by
default), so a stack applied by the CLI and one posted here are the same records. Stacks posted
here are planned against the server's inventory with every host treated as an agent host, and run
by a :class:`~graphium.run.deployer.Deployer` in the background whose :class:`AgentExecutor` waits for the
agents' reports. A monitor loop finishes what a background run could not (a server restart) and
returns expired leases to the queue.

This is the only module that imports FastAPI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pydantic
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from graphium.control.server.auth import Principal, TokenFileError, TokenRegistry
from graphium.control.server.changes import ChangeFeed, NotifyingStore
from graphium.errors import (
    GraphiumError,
    NotFoundError,
    PlacementError,
    PlanError,
    StoreError,
    TransitionError,
    ValidationError,
)
from graphium.executors.agent import AgentExecutor
from graphium.plan.model import ObservedHost, Plan
from graphium.plan.payloads import DeployPayload, ReplacePayload
from graphium.records.event import Event
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import TERMINAL, Task, TaskStatus, TaskType, utcnow
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus, EventType, event_json, stack_event, task_event
from graphium.stack.inventory import load_inventory
from graphium.stack.loader import StackDocument, load_stack_data
from graphium.stack.models import Connection, Host, Inventory

log = logging.getLogger("graphium.control.server")

API = "/api/v1"
MAX_CLAIM_WAIT = 30.0
MAX_CLAIM_BATCH = 100  # tasks per claim: an agent asks for as many as it has free slots
MAX_REPORT_BATCH = 1000  # status changes per batch report
MONITOR_INTERVAL = 1.0
CLAIM_RETRY = 0.25  # re-try claims this often even without a change: backoffs and leases expire by time
STREAM_KEEPALIVE = 15.0
OPEN = frozenset({TaskStatus.pending, TaskStatus.assigned, TaskStatus.running})
# tasks that build a stack up; pending ones must never run once the stack is being deleted
_BUILD_TYPES = frozenset(
    {TaskType.deploy, TaskType.replace, TaskType.ensure_network, TaskType.start, TaskType.restart}
)


# request bodies -----------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TaskCreate(Task):
    """A new task; ``id`` is generated when absent, and a new task always starts pending."""

    id: str | None = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]


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


_TASK_LIST = TypeAdapter(list[Task])
_RESULTS = TypeAdapter(list[ReportResult])


def _json(content: bytes | str) -> Response:
    """Already-encoded JSON: hot routes skip FastAPI's re-validation of a returned model, which
    costs as much as the store operation itself (the response_model stays for the schema)."""
    return Response(content=content, media_type="application/json")


class StackAccepted(_Body):
    id: str
    status: StackStatus
    tasks: int


# server state -------------------------------------------------------------------------------------
@dataclass
class Server:
    """What the routes share: the store, the change feed, tokens, inventory, background runs."""

    store: NotifyingStore
    feed: ChangeFeed
    tokens: TokenRegistry
    inventory_path: str | None
    executor: AgentExecutor
    runs: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    contacts: dict[str, datetime] = field(default_factory=dict)

    def touch(self, host_id: str) -> None:
        """An agent showed it is alive (claim, heartbeat, report)."""
        self.contacts[host_id] = datetime.now(UTC)

    def inventory(self, doc: StackDocument | None) -> Inventory:
        """The server's hosts (and the stack's own Host nodes), every one reached through its agent."""
        inv = load_inventory(self.inventory_path, doc.hosts if doc else [])
        return Inventory(hosts=[h.model_copy(update={"connection": Connection.agent}) for h in inv.hosts])

    def active(self, stack_id: str) -> bool:
        run = self.runs.get(stack_id)
        return run is not None and not run.done()

    async def stop_run(self, stack_id: str) -> None:
        run = self.runs.get(stack_id)
        if run is not None and not run.done():
            run.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await run

    def emit(self, *events: Event) -> None:
        EventBus(self.store).emit(*events)


def _store_from(state: str) -> NotifyingStore:
    from graphium.store.json_store import JsonTaskStore

    inner = JsonTaskStore(state)
    paths = [inner.path, inner.journal_path]
    return NotifyingStore(inner, ChangeFeed(paths))


def create_app(state: str, tokens_file: str, inventory: str | None = None) -> FastAPI:
    """The ASGI app over the store at ``state``; raises GraphiumError when it cannot serve safely."""
    tokens = TokenRegistry(tokens_file)
    if len(tokens) == 0:
        raise TokenFileError(
            f"{tokens_file}: no tokens configured; the server never runs open. "
            "Create one with `graphium-run token create --admin`"
        )
    if inventory is not None:
        load_inventory(inventory)  # fail at start, not on the first stack
    store = _store_from(state)
    feed = store._feed

    srv = Server(
        store=store,
        feed=feed,
        tokens=tokens,
        inventory_path=inventory,
        executor=AgentExecutor(
            store, wait_for_change=feed.wait_any, last_contact=lambda h: srv.contacts.get(h)
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        feed.bind(asyncio.get_running_loop())
        background = [asyncio.create_task(feed.watch()), asyncio.create_task(_monitor(srv))]
        try:
            yield
        finally:
            for job in [*background, *srv.runs.values()]:
                job.cancel()
            for job in [*background, *srv.runs.values()]:
                with suppress(asyncio.CancelledError, Exception):
                    await job

    app = FastAPI(
        title="graphium control server",
        version="1",
        summary="Task API for agents, stack API for people, event stream for watchers.",
        lifespan=lifespan,
    )
    app.state.server = srv
    _install_error_handlers(app)
    _install_routes(app, srv)
    return app


# errors -------------------------------------------------------------------------------------------
def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail, **extra})


def _install_error_handlers(app: FastAPI) -> None:
    def handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
        async def handle(_: Request, exc: Exception) -> JSONResponse:
            if isinstance(exc, ValidationError):
                problems = [{"file": p.file, "path": p.path, "message": p.message} for p in exc.problems]
                return _error(status, f"{len(problems)} problem(s) found", problems=problems)
            return _error(status, str(exc))

        return handle

    app.add_exception_handler(ValidationError, handler(400))
    app.add_exception_handler(NotFoundError, handler(404))
    app.add_exception_handler(TransitionError, handler(409))
    app.add_exception_handler(StoreError, handler(409))
    app.add_exception_handler(PlanError, handler(409))
    app.add_exception_handler(PlacementError, handler(409))
    app.add_exception_handler(GraphiumError, handler(400))

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, pydantic.ValidationError)
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return _error(400, "invalid data", errors=errors)

    app.add_exception_handler(pydantic.ValidationError, invalid)

    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(Exception, bug)


# auth ---------------------------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="An admin token, or an agent token bound to one host.")


async def _principal(
    request: Request, cred: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Async on purpose: a sync dependency costs a thread-pool hop per request, far more than
    the stat and hash it does."""
    if cred is None or not cred.credentials:
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    srv: Server = request.app.state.server
    found = srv.tokens.authenticate(cred.credentials)
    if found is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return found


async def _admin(who: Annotated[Principal, Depends(_principal)]) -> Principal:
    if not who.is_admin:
        raise HTTPException(403, "this route needs an admin token")
    return who


Caller = Annotated[Principal, Depends(_principal)]
Admin = Annotated[Principal, Depends(_admin)]


def _install_routes(app: FastAPI, srv: Server) -> None:
    store = srv.store

    def own_host(who: Principal, host_id: str) -> None:
        if not who.may_access_host(host_id):
            raise HTTPException(403, f"this token is bound to host {who.host_id}, not {host_id}")

    def own_task(who: Principal, task_id: str) -> Task:
        task = store.get_task(task_id)
        own_host(who, task.host_id)
        return task

    def changed(kind: EventType, update: Callable[[], Task]) -> Task:
        """Apply a task change and record its event in one durable write."""
        with store.batch():
            task = update()
            srv.emit(task_event(kind, task))
        return task

    # tasks ----------------------------------------------------------------------------------------
    @app.post(f"{API}/tasks", status_code=201, response_model=Task, tags=["tasks"])
    def create_task(body: TaskCreate, _: Admin) -> Task:
        """Enqueue one task (for hosts whose agent should run something outside a stack)."""
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
        with store.batch():
            store.create_tasks([task])
            srv.emit(task_event(EventType.task_created, task))
        return task

    @app.get(f"{API}/tasks", response_model=list[Task], tags=["tasks"])
    def list_tasks(
        who: Caller,
        status: TaskStatus | None = None,
        stack_id: Annotated[str | None, Query(alias="stackId")] = None,
        host_id: Annotated[str | None, Query(alias="hostId")] = None,
        agent_id: Annotated[str | None, Query(alias="agentId")] = None,
    ) -> list[Task]:
        """Tasks matching every filter given; an agent token sees only its own host's."""
        if not who.is_admin:
            host_id = who.host_id
        tasks = store.list_tasks(status=status, stack_id=stack_id, host_id=host_id)
        return [t for t in tasks if agent_id is None or t.agent_id == agent_id]

    @app.get(f"{API}/tasks/stats", tags=["tasks"])
    def task_stats(
        _: Admin, stack_id: Annotated[str | None, Query(alias="stackId")] = None
    ) -> dict[str, int]:
        """``{"total": n, "pending": n, ...}`` over every status."""
        return store.stats(stack_id=stack_id)

    @app.get(f"{API}/tasks/{{task_id}}", response_model=Task, tags=["tasks"])
    def get_task(task_id: str, who: Caller) -> Task:
        return own_task(who, task_id)

    @app.put(f"{API}/tasks/status", response_model=list[ReportResult], tags=["tasks"])
    def report_statuses(
        body: Annotated[list[StatusReport], Body(max_length=MAX_REPORT_BATCH)], who: Caller
    ) -> Response:
        """Report many status changes in one durable write (an agent's finished tasks).

        Each entry succeeds or fails on its own; its result carries the code the single-task
        route would have answered (403 for another host's task, 404, 409 with the reason).
        """
        if not who.is_admin:
            srv.touch(who.host_id or "")
        results: list[ReportResult] = []
        events: list[Event] = []
        with store.batch():
            for item in body:
                try:
                    if not who.may_access_host(store.get_task(item.id).host_id):
                        detail = f"this token is bound to host {who.host_id}"
                        results.append(ReportResult(id=item.id, code=403, detail=detail))
                        continue
                    task = store.transition(
                        item.id, item.status, error=item.error, result=item.result, agent_id=item.agent_id
                    )
                except NotFoundError as exc:
                    results.append(ReportResult(id=item.id, code=404, detail=str(exc)))
                except (TransitionError, StoreError) as exc:
                    results.append(ReportResult(id=item.id, code=409, detail=str(exc)))
                except GraphiumError as exc:
                    results.append(ReportResult(id=item.id, code=400, detail=str(exc)))
                else:
                    results.append(ReportResult(id=item.id, code=200, status=task.status))
                    events.append(task_event(EventType.task_updated, task))
            if events:
                srv.emit(*events)
        return _json(_RESULTS.dump_json(results, by_alias=True, exclude_none=True))

    @app.put(f"{API}/tasks/{{task_id}}/status", response_model=Task, tags=["tasks"])
    def update_status(task_id: str, body: StatusUpdate, who: Caller) -> Response:
        """Report progress: 409 with the reason when the lifecycle or the lease forbids the change."""
        own_task(who, task_id)
        if not who.is_admin:
            srv.touch(who.host_id or "")
        task = changed(
            EventType.task_updated,
            lambda: store.transition(
                task_id, body.status, error=body.error, result=body.result, agent_id=body.agent_id
            ),
        )
        return _json(task.model_dump_json(by_alias=True))

    @app.post(f"{API}/tasks/{{task_id}}/retry", response_model=Task, tags=["tasks"])
    def retry_task(task_id: str, _: Admin) -> Task:
        """Put a failed or cancelled task back in the queue."""
        task = store.get_task(task_id)
        if task.status not in (TaskStatus.failed, TaskStatus.cancelled):
            raise HTTPException(
                409, f"task {task_id} is {task.status.value}; only failed or cancelled tasks retry"
            )
        return changed(
            EventType.task_updated,
            lambda: store.transition(task_id, TaskStatus.pending, expected=task.status),
        )

    @app.post(f"{API}/tasks/{{task_id}}/cancel", response_model=Task, tags=["tasks"])
    def cancel_task(task_id: str, _: Admin) -> Task:
        """Cancel a task; an agent running it learns so when its next heartbeat is refused."""
        return changed(
            EventType.task_updated,
            lambda: store.transition(task_id, TaskStatus.cancelled, error="cancelled by an administrator"),
        )

    @app.post(f"{API}/tasks/{{task_id}}/heartbeat", response_model=Task, tags=["tasks"])
    def heartbeat(task_id: str, body: LeaseRequest, who: Caller) -> Response:
        """Extend the lease the agent holds; 409 once it no longer holds it (stop reporting then)."""
        task = own_task(who, task_id)
        srv.touch(task.host_id)
        return _json(
            store.heartbeat(task_id, body.agent_id, body.lease_seconds).model_dump_json(by_alias=True)
        )

    # agents ---------------------------------------------------------------------------------------
    @app.get(f"{API}/agents/{{host_id}}/tasks", response_model=list[Task], tags=["agents"])
    def agent_tasks(host_id: str, who: Caller) -> list[Task]:
        """The host's open tasks (pending, assigned, running)."""
        own_host(who, host_id)
        return [t for t in store.list_tasks(host_id=host_id) if t.status in OPEN]

    async def take(
        host_id: str,
        body: LeaseRequest,
        who: Principal,
        request: Request,
        wait: float,
        limit: int,
        start: bool,
    ) -> list[Task]:
        """Claim up to ``limit`` of the host's runnable tasks, waiting up to ``wait`` s for the
        first (long-poll); whatever is claimable then is returned, without waiting to fill up."""
        own_host(who, host_id)
        srv.touch(host_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait

        def attempt() -> list[Task]:
            with store.batch():
                tasks = store.claim_many(host_id, body.agent_id, body.lease_seconds, limit, start=start)
                if tasks:
                    srv.emit(*(task_event(EventType.task_updated, t) for t in tasks))
            return tasks

        while True:
            version = srv.feed.version
            tasks = await asyncio.to_thread(attempt)
            if tasks:
                return tasks
            remaining = deadline - loop.time()
            if remaining <= 0 or await request.is_disconnected():
                return []
            await srv.feed.wait(version, min(remaining, CLAIM_RETRY))
            srv.touch(host_id)

    @app.post(
        f"{API}/agents/{{host_id}}/claim",
        response_model=Task,
        responses={204: {"description": "nothing became claimable within `wait` seconds"}},
        tags=["agents"],
    )
    async def claim(
        host_id: str,
        body: LeaseRequest,
        who: Caller,
        request: Request,
        wait: Annotated[float, Query(ge=0, le=MAX_CLAIM_WAIT)] = 0.0,
        start: bool = False,
    ) -> Response:
        """Take the host's best runnable task, waiting up to ``wait`` s for one (long-poll).

        ``start=true`` makes it ``running`` at once, for an agent that starts it right away.
        """
        tasks = await take(host_id, body, who, request, wait, 1, start)
        if not tasks:
            return Response(status_code=204)
        return _json(tasks[0].model_dump_json(by_alias=True))

    @app.post(f"{API}/agents/{{host_id}}/claims", response_model=list[Task], tags=["agents"])
    async def claim_many(
        host_id: str,
        body: LeaseRequest,
        who: Caller,
        request: Request,
        wait: Annotated[float, Query(ge=0, le=MAX_CLAIM_WAIT)] = 0.0,
        max_tasks: Annotated[int, Query(alias="max", ge=1, le=MAX_CLAIM_BATCH)] = 1,
        start: bool = False,
    ) -> Response:
        """Take up to ``max`` of the host's runnable tasks in one durable write, best first.

        Long-polls like ``/claim`` but answers a list, empty after ``wait`` s. ``start=true``
        makes them ``running`` at once: an agent asks for as many as it has free slots.
        """
        tasks = await take(host_id, body, who, request, wait, max_tasks, start)
        return _json(_TASK_LIST.dump_json(tasks, by_alias=True))

    @app.put(f"{API}/agents/{{host_id}}/observed", status_code=204, tags=["agents"])
    def report_observed(host_id: str, body: ObservedHost, who: Caller) -> Response:
        """The agent's view of its host's graphium-managed containers, used to plan stacks."""
        own_host(who, host_id)
        if body.host != host_id:
            raise HTTPException(400, f"the report is about host {body.host!r}, not {host_id!r}")
        store.save_observation(body)
        srv.touch(host_id)
        return Response(status_code=204)

    # stacks ---------------------------------------------------------------------------------------
    @app.post(
        f"{API}/stacks",
        status_code=202,
        response_model=StackAccepted,
        responses={400: {"description": "the stack document is invalid; `problems` lists why"}},
        tags=["stacks"],
    )
    async def post_stack(document: Annotated[dict[str, Any], Body()], _: Admin) -> Any:
        """Validate, plan and enqueue a stack; the agents deploy it while this returns at once."""
        doc = load_stack_data(document, "stack")
        name = doc.stack.name
        if srv.active(name):
            raise HTTPException(409, f"stack {name} has a run in progress; wait for it or delete the stack")
        stored = store.get_stack(name)
        if stored is not None and stored.status is StackStatus.deleting:
            raise HTTPException(409, f"stack {name} is being deleted")
        deployer = Deployer(store, srv.executor, srv.inventory(doc), events=EventBus(store))
        plan = await deployer.plan(doc, environ={})
        started = await _start(srv, deployer, plan)
        return JSONResponse(
            status_code=202 if started else 200,
            content={
                "id": name,
                "status": (StackStatus.deploying if started else StackStatus.running).value,
                "tasks": len(plan.tasks),
            },
        )

    @app.get(f"{API}/stacks", tags=["stacks"])
    def list_stacks(_: Admin) -> list[dict[str, Any]]:
        return [_public(s) for s in store.list_stacks()]

    @app.get(f"{API}/stacks/{{stack_id}}", tags=["stacks"])
    def get_stack(stack_id: str, _: Admin) -> dict[str, Any]:
        """Deployment state: status, phase, progress, placements, and every task's status."""
        record = store.get_stack(stack_id)
        if record is None:
            raise NotFoundError(f"stack {stack_id} not found")
        tasks = store.list_tasks(stack_id=stack_id)
        return {
            **_public(record),
            "active": srv.active(stack_id),
            "stats": store.stats(stack_id=stack_id),
            "tasks": [
                {
                    "id": t.id,
                    "taskType": t.task_type.value,
                    "status": t.status.value,
                    "hostId": t.host_id,
                    "description": t.description,
                    "error": t.error,
                }
                for t in tasks
            ],
        }

    @app.delete(f"{API}/stacks/{{stack_id}}", status_code=202, response_model=StackAccepted, tags=["stacks"])
    async def delete_stack(stack_id: str, _: Admin) -> Any:
        """Enqueue deletion tasks; the stack's records go once every container is gone."""
        record = store.get_stack(stack_id)
        if record is None:
            raise NotFoundError(f"stack {stack_id} not found")
        await srv.stop_run(stack_id)
        await asyncio.to_thread(_cancel_open_builds, srv, stack_id, "the stack is being deleted")
        hosts = set(record.hosts) | {
            str(p.get("hostId")) for p in record.placements.values() if p.get("hostId")
        }
        known = srv.inventory(None).by_id()
        inventory = Inventory(
            hosts=[
                known.get(h) or Host.model_validate({"@id": h, "connection": Connection.agent.value})
                for h in sorted(hosts)
            ]
        )
        deployer = Deployer(store, srv.executor, inventory, events=EventBus(store))
        plan = await deployer.plan_destroy(stack_id)
        await _start(srv, deployer, plan)
        return {"id": stack_id, "status": StackStatus.deleting.value, "tasks": len(plan.tasks)}

    # events ---------------------------------------------------------------------------------------
    async def event_batches(after: int, stack_id: str | None) -> AsyncIterator[list[Event]]:
        """Stored events after ``after`` in seq order, then live ones as they are stored; an empty
        batch every STREAM_KEEPALIVE seconds of silence."""
        last = after
        while True:
            version = srv.feed.version
            events = await asyncio.to_thread(store.list_events, after=last, stack_id=stack_id, limit=500)
            if events:
                last = events[-1].seq
                yield events
                continue
            await srv.feed.wait(version, STREAM_KEEPALIVE)
            if srv.feed.version == version:
                yield []

    @app.get(
        f"{API}/events",
        tags=["events"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
    )
    async def events_sse(
        _: Admin,
        request: Request,
        after: Annotated[int, Query(ge=0)] = 0,
        stack_id: Annotated[str | None, Query(alias="stackId")] = None,
    ) -> StreamingResponse:
        """Server-sent events: ``id`` is the event's seq, ``event`` its type, ``data`` its JSON."""

        async def stream() -> AsyncIterator[str]:
            async for batch in event_batches(after, stack_id):
                if await request.is_disconnected():
                    return
                if not batch:
                    yield ": keepalive\n\n"
                for event in batch:
                    yield f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(event_json(event))}\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.websocket(f"{API}/events/ws")
    async def events_ws(
        websocket: WebSocket, after: int = 0, stack_id: str | None = Query(None, alias="stackId")
    ) -> None:
        """The same stream over a WebSocket, one JSON event per message; the admin token goes in
        the Authorization header (or ``?token=`` for clients that cannot set headers)."""
        header = websocket.headers.get("authorization", "")
        token = (
            header[7:] if header.lower().startswith("bearer ") else websocket.query_params.get("token", "")
        )
        who = srv.tokens.authenticate(token) if token else None
        if who is None or not who.is_admin:
            await websocket.close(code=4401 if who is None else 4403)
            return
        await websocket.accept()
        try:
            async for batch in event_batches(max(after, 0), stack_id):
                for event in batch:
                    await websocket.send_json(event_json(event))
        except WebSocketDisconnect:
            return


def _public(record: StackRecord) -> dict[str, Any]:
    data = record.dump()
    data.pop("spec", None)  # holds resolved environment values, secrets included
    return data


# background runs ----------------------------------------------------------------------------------
async def _start(srv: Server, deployer: Deployer, plan: Plan) -> bool:
    """Run ``plan`` in the background; return once its tasks are stored (True), or once it ended
    without storing any because nothing changes (False). Errors before that are raised here."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[bool] = loop.create_future()
    kinds = {EventType.stack_deploying.value, EventType.stack_deleting.value}

    def on_event(event: Event) -> None:
        if event.type in kinds and event.stack_id == plan.stack and not started.done():
            started.set_result(True)

    deployer.events.subscribe(on_event)

    async def run() -> None:
        try:
            await deployer.apply(plan)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not started.done():
                started.set_exception(exc)
                return
            log.exception("stack %s: background run failed", plan.stack)
            await asyncio.to_thread(_mark_error, srv, plan.stack, f"{type(exc).__name__}: {exc}")
        finally:
            if not started.done():
                started.set_result(False)
            if srv.runs.get(plan.stack) is asyncio.current_task():
                del srv.runs[plan.stack]

    srv.runs[plan.stack] = asyncio.create_task(run(), name=f"stack-{plan.stack}")
    return await started


def _mark_error(srv: Server, stack_id: str, error: str) -> None:
    with srv.store.batch():
        record = srv.store.get_stack(stack_id)
        if record is None or record.status not in (StackStatus.deploying, StackStatus.deleting):
            return
        srv.store.save_stack(
            record.model_copy(update={"status": StackStatus.error, "phase": "failed", "error": error})
        )
        srv.emit(stack_event(EventType.stack_failed, stack_id, error=error))


def _cancel_open_builds(srv: Server, stack_id: str, reason: str) -> None:
    """Pending tasks that would build the stack up must not run once it is being deleted."""
    with srv.store.batch():
        for task in srv.store.list_tasks(stack_id=stack_id, status=TaskStatus.pending):
            if task.task_type in _BUILD_TYPES:
                ended = srv.store.transition(task.id, TaskStatus.cancelled, error=f"not started: {reason}")
                srv.emit(task_event(EventType.task_updated, ended))


# task monitor -------------------------------------------------------------------------------------
async def _monitor(srv: Server) -> None:
    """Every MONITOR_INTERVAL: requeue expired leases and finalise stacks nobody is running."""
    while True:
        try:
            await asyncio.to_thread(_monitor_once, srv, set(srv.runs))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task monitor pass failed")
        await asyncio.sleep(MONITOR_INTERVAL)


def _monitor_once(srv: Server, active: set[str]) -> None:
    store = srv.store
    with store.batch():
        requeued = store.requeue_expired()
        if requeued:
            srv.emit(*(task_event(EventType.task_updated, t) for t in requeued))
    now = datetime.now(UTC)
    for record in store.list_stacks():
        if record.id in active or record.status not in (StackStatus.deploying, StackStatus.deleting):
            continue
        if record.runner_lease_until and datetime.fromisoformat(record.runner_lease_until) > now:
            continue  # another process (graphium-run apply on this store) is running it
        with store.batch():
            current = store.get_stack(record.id)
            if current is None or current.status not in (StackStatus.deploying, StackStatus.deleting):
                continue
            _finalise(srv, current)


def _run_task_ids(srv: Server, stack_id: str) -> set[str] | None:
    """The tasks created by the stack's latest run, from its events (None when they are gone).

    The Deployer records a run's new tasks (task_created) right before its stack_deploying or
    stack_deleting event, in the same write.
    """
    events = srv.store.list_events(stack_id=stack_id, limit=1_000_000)
    kinds = (EventType.stack_deploying, EventType.stack_deleting)
    starts = [i for i, e in enumerate(events) if e.type in kinds]
    if not starts:
        return None
    ids = {e.task_id for e in events[starts[-1] :] if e.type == EventType.task_created and e.task_id}
    i = starts[-1] - 1
    while i >= 0 and events[i].type == EventType.task_created:
        if events[i].task_id:
            ids.add(events[i].task_id or "")
        i -= 1
    return ids


def _cancel_blocked(srv: Server, tasks: list[Task]) -> list[Task]:
    """Pending tasks whose dependencies can no longer complete would wait forever: cancel them."""
    by_id = {t.id: t for t in srv.store.list_tasks(stack_id=tasks[0].stack_id)} if tasks else {}
    out = {t.id: t for t in tasks}
    progress = True
    while progress:
        progress = False
        for task in list(out.values()):
            if task.status is not TaskStatus.pending:
                continue
            dead = [
                d
                for d in task.depends_on
                if d not in by_id or by_id[d].status in (TaskStatus.failed, TaskStatus.cancelled)
            ]
            if dead:
                ended = srv.store.transition(
                    task.id, TaskStatus.cancelled, error=f"not started: dependency {dead[0]} did not complete"
                )
                srv.emit(task_event(EventType.task_updated, ended))
                out[task.id] = by_id[task.id] = ended
                progress = True
    return list(out.values())


def _finalise(srv: Server, record: StackRecord) -> None:
    """Settle a deploying or deleting stack whose background run is gone, once its tasks ended."""
    store = srv.store
    deleting = record.status is StackStatus.deleting
    if deleting:
        _cancel_open_builds(srv, record.id, "the stack is being deleted")
    ids = _run_task_ids(srv, record.id)
    tasks = [t for t in store.list_tasks(stack_id=record.id) if ids is None or t.id in ids]
    if deleting:  # builds of an earlier run that never ran do not block a deletion
        tasks = [t for t in tasks if t.task_type not in _BUILD_TYPES]
    tasks = _cancel_blocked(srv, tasks)
    if any(t.status not in TERMINAL for t in tasks):
        ended = sum(t.status in TERMINAL for t in tasks)
        progress = int(100 * ended / len(tasks))
        if progress != record.progress:
            store.save_stack(record.model_copy(update={"progress": progress}))
        return
    failed = [t for t in tasks if t.status is not TaskStatus.completed]
    error = "; ".join(f"{t.host_id}: {t.description or t.task_type.value}: {t.error}" for t in failed) or None
    if deleting and not failed:
        store.delete_stack(record.id)
        srv.emit(stack_event(EventType.stack_deleted, record.id))
    elif deleting or failed:
        store.save_stack(
            record.model_copy(
                update={
                    "status": StackStatus.error,
                    "phase": "delete-failed" if deleting else "failed",
                    "error": error,
                }
            )
        )
        srv.emit(stack_event(EventType.stack_failed, record.id, error=error))
    else:
        store.save_stack(
            record.model_copy(
                update={
                    "status": StackStatus.running,
                    "phase": "running",
                    "progress": 100,
                    "error": None,
                    "placements": _placements(record, tasks),
                }
            )
        )
        srv.emit(stack_event(EventType.stack_running, record.id, error=None))


def _placements(record: StackRecord, tasks: list[Task]) -> dict[str, dict[str, Any]]:
    """The stored placements updated with the containers this run created."""
    placements = dict(record.placements)
    for task in tasks:
        if task.status is not TaskStatus.completed:
            continue
        if task.task_type is TaskType.deploy:
            container = DeployPayload.model_validate(task.payload).container
        elif task.task_type is TaskType.replace:
            container = ReplacePayload.model_validate(task.payload).container
        else:
            continue
        placements[container.name] = {
            "hostId": task.host_id,
            "containerId": (task.result or {}).get("containerId"),
            "dockerName": container.docker_name,
        }
    return placements


# entry point --------------------------------------------------------------------------------------
def serve(host: str, port: int, state: str, tokens_file: str, inventory: str | None) -> None:
    """Run the server until interrupted (``graphium-run serve``)."""
    import uvicorn

    Path(state).parent.mkdir(parents=True, exist_ok=True)
    app = create_app(state, tokens_file, inventory)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=2)


__all__ = ["create_app", "serve"]
