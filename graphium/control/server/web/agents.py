"""The agents page: every agent, live or down, with what it holds; hosts no agent serves; and the
task queue's statistics."""

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
    agents = srv.agents.list()
    served = {a.host_id for a in agents}
    hosts = sorted(h.id for h in srv.inventory(None).hosts if h.id not in served)
    reasons = srv.agents.waiting_reasons(hosts)
    unserved = [(h, reasons.get(h, "")) for h in hosts]
    return page(request, "agents.html", session, agents=agents, unserved=unserved, stats=srv.store.stats())


__all__ = ["router"]
