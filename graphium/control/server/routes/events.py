"""Event routes: the stored events then live ones, as server-sent events or over a WebSocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Annotated

from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from graphium.control.server.auth import Principal
from graphium.control.server.deps import API, Admin, Srv
from graphium.control.server.state import Server
from graphium.records.event import Event
from graphium.run.events import event_json

STREAM_KEEPALIVE = 15.0
WS_AUTH_TIMEOUT = 10.0  # seconds a WebSocket client without the header has to send its token

router = APIRouter(prefix=API, tags=["events"])


async def event_batches(srv: Server, after: int, stack_id: str | None) -> AsyncIterator[list[Event]]:
    """Stored events after ``after`` in seq order, then live ones as they are stored; an empty
    batch every STREAM_KEEPALIVE seconds of silence."""
    last = after
    while True:
        version = srv.feed.version
        events = await asyncio.to_thread(srv.store.list_events, after=last, stack_id=stack_id, limit=500)
        if events:
            last = events[-1].seq
            yield events
            continue
        await srv.feed.wait(version, STREAM_KEEPALIVE)
        if srv.feed.version == version:
            yield []


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}},
)
async def events_sse(
    _: Admin,
    srv: Srv,
    request: Request,
    after: Annotated[int, Query(ge=0)] = 0,
    stack_id: Annotated[str | None, Query(alias="stackId")] = None,
) -> StreamingResponse:
    """Server-sent events: ``id`` is the event's seq, ``event`` its type, ``data`` its JSON."""

    async def stream() -> AsyncIterator[str]:
        async for batch in event_batches(srv, after, stack_id):
            if await request.is_disconnected():
                return
            if not batch:
                yield ": keepalive\n\n"
            for event in batch:
                yield f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(event_json(event))}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.websocket("/events/ws")
async def events_ws(
    websocket: WebSocket, after: int = 0, stack_id: str | None = Query(None, alias="stackId")
) -> None:
    """The same stream over a WebSocket, one JSON event per message.

    The admin token goes in the ``Authorization: Bearer`` header, or, for clients that cannot set
    headers (browsers), in a first message ``{"token": "..."}`` sent within WS_AUTH_TIMEOUT
    seconds. Never in the URL, which access logs record: ``?token=`` is refused (close 4400).
    Closes with 4401 for no or an unknown token, 4403 for an agent token.
    """
    srv: Server = websocket.app.state.server
    if "token" in websocket.query_params:
        await websocket.close(code=4400, reason="no token in the URL: use the header or a first message")
        return
    header = websocket.headers.get("authorization", "")
    if header:
        token = header[7:] if header.lower().startswith("bearer ") else ""
        who = srv.tokens.authenticate(token) if token else None
        if who is None or not who.is_admin:  # refused before the handshake completes
            await websocket.close(code=4401 if who is None else 4403)
            return
        await websocket.accept()
    else:
        await websocket.accept()
        who = await _first_message_principal(srv, websocket)
        if who is None or not who.is_admin:
            with suppress(RuntimeError):  # the client may be gone already
                await websocket.close(code=4401 if who is None else 4403)
            return
    sending = asyncio.ensure_future(_send_events(websocket, srv, max(after, 0), stack_id))
    closed = asyncio.ensure_future(_until_closed(websocket))
    try:  # a client that closes ends the stream at once, not at the next keepalive
        await asyncio.wait({sending, closed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for job in (sending, closed):
            job.cancel()
            with suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await job


async def _send_events(websocket: WebSocket, srv: Server, after: int, stack_id: str | None) -> None:
    async for batch in event_batches(srv, after, stack_id):
        for event in batch:
            await websocket.send_json(event_json(event))


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it closes the connection."""
    while (await websocket.receive()).get("type") != "websocket.disconnect":
        pass


async def _first_message_principal(srv: Server, websocket: WebSocket) -> Principal | None:
    """Who the first message's ``{"token": ...}`` names; None when it does not come in time,
    is no such object, or names no token."""
    try:
        message = await asyncio.wait_for(websocket.receive_text(), WS_AUTH_TIMEOUT)
        data = json.loads(message)
    except (TimeoutError, ValueError, WebSocketDisconnect, KeyError, RuntimeError):
        return None
    token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        return None
    return srv.tokens.authenticate(token)


__all__ = ["event_batches", "router"]
