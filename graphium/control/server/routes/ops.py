"""Day-2 reads through the server: plan previews, and reads relayed to agents (the request
channel, the hosts' live containers, stack logs).

People ask the server (admin token); the server asks each host's agent through the request
channel (:mod:`graphium.control.server.requests`) and answers for all hosts at once. A host
without a live agent answers at once with its presence ("no live agent for vm2, last seen 45 s
ago"), never with a wait for a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import Response, StreamingResponse

from graphium.control.envelope import posted_stack
from graphium.control.live_requests import LOG_ERROR, LOG_TRAILER
from graphium.control.server.deps import API, Admin, Caller, Srv, own_host
from graphium.control.server.requests import PICKUP_TIMEOUT
from graphium.control.server.state import Server
from graphium.docker.listing import mask_log_line
from graphium.records.live import LiveHost
from graphium.run.deployer import Deployer
from graphium.run.events import EventBus
from graphium.stack.loader import load_stack_data
from graphium.stack.masking import collect_secrets
from graphium.stack.secrets import redact

router = APIRouter(prefix=API, tags=["operations"])

MAX_POLL_WAIT = 30.0
PS_TIMEOUT = 10.0
#: A followed stream's agent sends at least a keep-alive this often; silence longer means it died.
ANSWER_TIMEOUT = 20.0


@router.post("/plans")
async def preview_plan(
    body: Annotated[dict[str, Any], Body()], _: Admin, srv: Srv, destroy: bool = False
) -> dict[str, Any]:
    """The plan the server would run for this stack document now, from its agents' reports
    (``plan --server``); changes nothing. The body is a document or a ``{"document",
    "variables"}`` envelope, as for ``POST /stacks``. Secret values are masked."""
    posted = posted_stack(body)
    doc = load_stack_data(posted.document, "stack")
    deployer = Deployer(srv.store, srv.executor, srv.inventory(doc), events=EventBus(srv.store))
    environ = posted.variables or {}
    plan = await (deployer.plan_destroy(doc.stack.name) if destroy else deployer.plan(doc, environ=environ))
    return {"plan": redact(plan.dump(), plan.secret_values())}


@router.get("/agents/{host_id}/requests")
async def poll_requests(
    host_id: str,
    who: Caller,
    srv: Srv,
    wait: Annotated[float, Query(ge=0, le=MAX_POLL_WAIT)] = 0.0,
    agent_id: Annotated[str | None, Query(alias="agentId", max_length=200)] = None,
) -> list[dict[str, Any]]:
    """The host's live-read requests (``ps``, ``logs``) not yet handed out; long-polls ``wait`` s."""
    own_host(who, host_id)
    srv.touch(host_id, agent_id)
    found = await srv.requests.wait(host_id, wait)
    return [r.public() for r in found]


@router.put("/agents/{host_id}/requests/{request_id}", status_code=204)
async def answer_request(
    host_id: str, request_id: str, who: Caller, srv: Srv, body: Annotated[dict[str, Any], Body()]
) -> Response:
    """One answer to a request: ``{"result"}``, ``{"error"}``, or ``{"lines", "done", "count"}``;
    404 when the request is gone (its asker left: stop sending)."""
    own_host(who, host_id)
    if not srv.requests.answer(host_id, request_id, body):
        raise HTTPException(404, f"request {request_id} is gone: its asker left")
    return Response(status_code=204)


def _hosts(srv: Server, stack: str | None) -> list[str]:
    """The stack's hosts when it is known, else every host of the server's inventory."""
    record = srv.store.get_stack(stack) if stack else None
    if record is not None and record.hosts:
        return sorted(record.hosts)
    return [h.id for h in srv.inventory(None).hosts]


async def _host_ps(srv: Server, host: str, stack: str | None) -> dict[str, Any]:
    why = srv.agents.waiting_reason(host)
    if why is not None:
        return LiveHost(host=host, error=why).dump()
    answer = await srv.requests.ask(host, "ps", {"stack": stack}, PS_TIMEOUT)
    if answer.get("error"):
        return LiveHost(host=host, error=str(answer["error"])).dump()
    try:
        found = LiveHost.model_validate(answer.get("result") or {})
    except ValueError as exc:
        return LiveHost(
            host=host, error=f"the agent of host {host} answered an unreadable list: {exc}"
        ).dump()
    return found.model_copy(update={"host": host}).dump()


@router.get("/hosts/status")
async def hosts_status(_: Admin, srv: Srv, stack: str | None = None) -> list[dict[str, Any]]:
    """What each host (of ``stack``, or of the inventory) runs now, as its agent reports it live:
    container, state, health, image, ports, uptime, restarts; or the host's error."""
    hosts = _hosts(srv, stack)
    return list(await asyncio.gather(*(_host_ps(srv, h, stack) for h in hosts)))


async def _relay(srv: Server, host: str, params: dict[str, Any], out: asyncio.Queue[str | int]) -> None:
    """Put one host's log lines on ``out``, then the number of containers it read."""
    why = srv.agents.waiting_reason(host)
    if why is not None:
        await out.put(f"{LOG_ERROR}{why}")
        await out.put(0)
        return
    count = 0
    with srv.requests.open(host, "logs", params) as request:
        while True:
            timeout = ANSWER_TIMEOUT if request.picked else PICKUP_TIMEOUT
            try:
                answer = await asyncio.wait_for(request.answers.get(), timeout)
            except TimeoutError:
                await out.put(f"{LOG_ERROR}the agent of host {host} stopped answering within {timeout:g}s")
                break
            for line in answer.get("lines") or []:
                await out.put(str(line))
            if answer.get("error"):
                await out.put(f"{LOG_ERROR}{host}: {answer['error']}")
            if answer.get("done"):
                count = int(answer.get("count") or 0)
                break
    await out.put(count)


@router.get("/stacks/{stack_id}/logs")
async def stack_logs(
    stack_id: str,
    _: Admin,
    srv: Srv,
    container: str | None = None,
    follow: bool = False,
    tail: Annotated[int | None, Query(ge=0)] = None,
    since: Annotated[float | None, Query(ge=0)] = None,
) -> StreamingResponse:
    """The stack's logs from its hosts' agents, one line each, prefixed ``container@host |``,
    secrets masked by the agents; lines ``#! error: ...`` say what a host could not give, the
    last line ``#! containers: N`` how many containers were read. ``follow`` streams until the
    client leaves."""
    hosts = _hosts(srv, stack_id)
    record = srv.store.get_stack(stack_id)
    secrets = collect_secrets([t.payload for t in srv.store.list_tasks(stack_id=stack_id)])
    secrets |= collect_secrets(record.spec) if record is not None else set()
    params = {"stack": stack_id, "container": container, "follow": follow, "tail": tail, "since": since}

    async def lines() -> AsyncIterator[str]:
        out: asyncio.Queue[str | int] = asyncio.Queue()
        relays = [asyncio.create_task(_relay(srv, h, params, out)) for h in hosts]
        done, total = 0, 0
        try:
            while done < len(relays):
                item = await out.get()
                if isinstance(item, int):
                    done, total = done + 1, total + item
                else:  # the agent masked key-named secrets; the server knows values too
                    yield mask_log_line(item, secrets) + "\n"
            yield f"{LOG_TRAILER}{total}\n"
        finally:
            for relay in relays:
                relay.cancel()
            for relay in relays:
                with contextlib.suppress(asyncio.CancelledError):
                    await relay

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


__all__ = ["router"]
