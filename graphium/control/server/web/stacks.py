"""Stack pages: the list, one stack's live page, and its deletion.

A stack's page renders its state on the server; the page's script then listens to
``/web/stacks/{id}/events`` (server-sent events, authenticated by the session cookie), where each
batch of the stack's events from the store's event stream brings the freshly rendered state, so
the page never reloads and no state logic lives in JavaScript. Once the records are gone the
stream says so and ends.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from graphium.control.server.routes import stacks as stacks_api
from graphium.control.server.routes.events import STREAM_KEEPALIVE, event_batches
from graphium.control.server.state import Server
from graphium.control.server.web.forms import Posted, posted_form
from graphium.control.server.web.render import SECURITY_HEADERS, page, render
from graphium.control.server.web.session import Session, current_session, signed_in
from graphium.control.server.web.views import StackView, stack_row, stack_view
from graphium.errors import GraphiumError
from graphium.records.event import Event

router = APIRouter(include_in_schema=False)

RECENT_EVENTS = 15
LIST_INTERVAL = 0.25
SignedIn = Annotated[Session, Depends(signed_in)]
_STREAM_HEADERS = {**SECURITY_HEADERS, "X-Accel-Buffering": "no"}


def _srv(request: Request) -> Server:
    srv: Server = request.app.state.server
    return srv


def _list_context(srv: Server) -> dict[str, Any]:
    rows = [stack_row(r) for r in sorted(srv.store.list_stacks(), key=lambda r: r.id)]
    return {"stacks": rows, "stats": srv.store.stats()}


@router.get("/web/stacks")
def stacks_list(request: Request, session: SignedIn) -> Response:
    return page(request, "stacks.html", session, **_list_context(_srv(request)))


@router.get("/web/events/stacks")
async def stacks_events(request: Request, _: SignedIn) -> StreamingResponse:
    """The stacks list as server-sent ``state`` events (HTML), re-rendered whenever the store
    changed (at most every LIST_INTERVAL seconds), and after every quiet spell."""
    srv = _srv(request)

    def html() -> str:
        return render("_stacks_table.html", **_list_context(srv))

    async def stream() -> AsyncIterator[str]:
        while True:
            version = srv.feed.version
            yield _sse("state", await asyncio.to_thread(html))
            await asyncio.sleep(LIST_INTERVAL)
            await srv.feed.wait(version, STREAM_KEEPALIVE)
            if await request.is_disconnected() or current_session(request) is None:
                return

    return StreamingResponse(stream(), media_type="text/event-stream", headers=_STREAM_HEADERS)


def load_view(srv: Server, stack_id: str) -> StackView | None:
    """The stack as its page shows it, or None once its records are gone."""
    record = srv.store.get_stack(stack_id)
    if record is None:
        return None
    tasks = srv.store.list_tasks(stack_id=stack_id)
    view = stack_view(record, tasks, active=srv.active(stack_id), stats=srv.store.stats(stack_id=stack_id))
    current = [t for t in tasks if t.run_id == record.run_id]
    view.waiting = [w["message"] for w in stacks_api.waiting_hosts(srv, current)]
    return view


def _recent(events: Iterable[Event]) -> list[dict[str, object]]:
    """The latest events, newest first, in the few fields a person reads (events hold no payload)."""
    out: list[dict[str, object]] = []
    for event in reversed(list(events)):
        data = event.data
        out.append(
            {
                "seq": event.seq,
                "type": event.type,
                "time": event.time,
                "host": event.host_id or "",
                "what": str(data.get("description") or data.get("taskType") or data.get("phase") or ""),
                "status": str(data.get("status") or ""),
                "error": data.get("error"),
            }
        )
    return out


@router.get("/web/stacks/{stack_id}")
def stack_page(request: Request, stack_id: str, session: SignedIn) -> Response:
    srv = _srv(request)
    view = load_view(srv, stack_id)
    events = srv.store.list_events(stack_id=stack_id, limit=1_000_000)[-RECENT_EVENTS:]
    deleting = request.query_params.get("deleted") == "1"
    status = 200 if view is not None or deleting else 404
    return page(
        request, "stack.html", session, status=status, stack_id=stack_id, view=view, events=_recent(events)
    )


def _state_html(srv: Server, stack_id: str, recent: Iterable[Event]) -> tuple[str, bool]:
    view = load_view(srv, stack_id)
    return render("_stack_state.html", stack_id=stack_id, view=view, events=_recent(recent)), view is None


def _sse(kind: str, data: str, seq: int | None = None) -> str:
    lines = "".join(f"data: {line}\n" for line in data.splitlines() or [""])
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\n{lines}\n"


@router.get("/web/stacks/{stack_id}/events")
async def stack_events(request: Request, stack_id: str, _: SignedIn) -> StreamingResponse:
    """The stack's state as server-sent ``state`` events (HTML), re-rendered at every batch of its
    events and after every quiet spell; ``gone`` once its records are deleted, and the stream ends."""
    srv = _srv(request)

    async def stream() -> AsyncIterator[str]:
        history = await asyncio.to_thread(srv.store.list_events, stack_id=stack_id, limit=1_000_000)
        recent: deque[Event] = deque(history[-RECENT_EVENTS:], maxlen=RECENT_EVENTS)
        html, gone = await asyncio.to_thread(_state_html, srv, stack_id, recent)
        yield _sse("state", html, history[-1].seq if history else None)
        if gone:
            yield _sse("gone", json.dumps({"stackId": stack_id}))
            return
        async for batch in event_batches(srv, history[-1].seq if history else 0, stack_id):
            if await request.is_disconnected() or current_session(request) is None:
                return
            recent.extend(batch)  # a quiet spell re-renders too: ages and agents' presence move on
            html, gone = await asyncio.to_thread(_state_html, srv, stack_id, recent)
            yield _sse("state", html, batch[-1].seq if batch else None)
            if gone:
                yield _sse("gone", json.dumps({"stackId": stack_id}))
                return

    return StreamingResponse(stream(), media_type="text/event-stream", headers=_STREAM_HEADERS)


@router.get("/web/stacks/{stack_id}/delete")
def delete_confirm(request: Request, stack_id: str, session: SignedIn) -> Response:
    view = load_view(_srv(request), stack_id)
    if view is None:
        return RedirectResponse(f"/web/stacks/{quote(stack_id)}?deleted=1", status_code=303)
    return page(request, "delete.html", session, view=view, error=None)


@router.post("/web/stacks/{stack_id}/delete")
async def delete(request: Request, stack_id: str) -> Response:
    """Enqueue the deletion (the same route the API offers), then follow it on the stack's page."""
    posted = await posted_form(request)
    if not isinstance(posted, Posted):
        return posted
    srv = _srv(request)
    try:
        await stacks_api.delete_stack(stack_id, posted.session.principal, srv)
    except GraphiumError as exc:
        view = await asyncio.to_thread(load_view, srv, stack_id)
        if view is None:
            return RedirectResponse(f"/web/stacks/{quote(stack_id)}?deleted=1", status_code=303)
        return page(request, "delete.html", posted.session, status=409, view=view, error=str(exc))
    return RedirectResponse(f"/web/stacks/{quote(stack_id)}?deleted=1", status_code=303)


__all__ = ["load_view", "router"]
