"""The agents page: which hosts have a live agent, and the task queue's statistics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from graphium.control.server.state import Server
from graphium.control.server.web.render import page
from graphium.control.server.web.session import Session, signed_in

router = APIRouter(include_in_schema=False)


@router.get("/web/agents")
def agents_page(request: Request, session: Annotated[Session, Depends(signed_in)]) -> Response:
    srv: Server = request.app.state.server
    hosts = sorted(h.id for h in srv.inventory(None).hosts)
    contacts = {h: srv.contacts.get(h) for h in sorted(set(hosts) | set(srv.contacts))}
    return page(request, "agents.html", session, contacts=contacts, stats=srv.store.stats())


__all__ = ["router"]
