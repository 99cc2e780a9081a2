"""Dependencies the routes share: the server state, who is calling, and what they may touch."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from graphium.control.server.auth import Principal
from graphium.control.server.state import Server
from graphium.records.task import Task

API = "/api/v1"

_bearer = HTTPBearer(auto_error=False, description="An admin token, or an agent token bound to one host.")


async def server(request: Request) -> Server:
    """The app's shared state (set by ``create_app``)."""
    srv: Server = request.app.state.server
    return srv


async def principal(
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


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise HTTPException(403, "this route needs an admin token")
    return who


Srv = Annotated[Server, Depends(server)]
Caller = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]


def own_host(who: Principal, host_id: str) -> None:
    """Refuse (403) an agent token bound to another host."""
    if not who.may_access_host(host_id):
        raise HTTPException(403, f"this token is bound to host {who.host_id}, not {host_id}")


def own_task(srv: Server, who: Principal, task_id: str) -> Task:
    """The task, if the caller may see it (404 when unknown, 403 when another host's)."""
    task = srv.store.get_task(task_id)
    own_host(who, task.host_id)
    return task


def json_body(content: bytes | str) -> Response:
    """Already-encoded JSON: hot routes skip FastAPI's re-validation of a returned model, which
    costs as much as the store operation itself (the response_model stays for the schema)."""
    return Response(content=content, media_type="application/json")


__all__ = ["API", "Admin", "Caller", "Srv", "json_body", "own_host", "own_task", "server"]
