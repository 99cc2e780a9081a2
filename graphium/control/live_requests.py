"""The agent's side of the request channel: live reads the server relays (``ps``, ``logs``).

Beside its claims, the agent long-polls ``GET /agents/{host}/requests``; each request is served
on its own task, through the agent's local engine, and answered with ``PUT
/agents/{host}/requests/{id}``: ``ps`` with one result, ``logs`` with batches of lines (masked at
the source, see :mod:`graphium.docker.live`) every ``FLUSH`` seconds, at least every
``KEEPALIVE`` seconds while following, then a last one with ``done``. An answer refused as gone
(404: the asker left) ends the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from graphium.control.reporter import Backoff, Refused, Unreachable
from graphium.control.self_report import Request
from graphium.docker.live import LogOptions, list_live, stream_stack_logs
from graphium.docker.protocol import ContainerEngine
from graphium.errors import GraphiumError
from graphium.records.live import LiveHost

if TYPE_CHECKING:
    from graphium.docker.engine import DockerEngine

log = logging.getLogger("graphium.control.agent")

#: The log stream's control lines, from server to client (a relayed log line starts with its
#: container's name, never with ``#!``).
LOG_TRAILER = "#! containers: "
LOG_ERROR = "#! error: "
FLUSH = 0.2
KEEPALIVE = 5.0
MAX_BATCH = 500


class RequestPoller:
    """Polls and serves one host's live-read requests until cancelled."""

    def __init__(
        self,
        request: Request,
        engine: ContainerEngine,
        *,
        host_id: str,
        agent_id: str,
        wait: float,
        backoff_cap: float,
    ) -> None:
        self._request = request
        self._engine = engine
        self._host_id = host_id
        self._agent_id = agent_id
        self._wait = wait
        self._backoff_cap = backoff_cap
        self._serving: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        backoff = Backoff(cap=self._backoff_cap)
        try:
            while True:
                try:
                    response = await self._request(
                        "GET",
                        f"/agents/{self._host_id}/requests",
                        params={"wait": self._wait, "agentId": self._agent_id},
                    )
                    found: list[dict[str, Any]] = response.json() if response is not None else []
                except (Unreachable, Refused, ValueError) as exc:
                    log.debug("request poll failed: %s", exc)
                    await asyncio.sleep(backoff.next_delay())
                    continue
                backoff.reset()
                for item in found:
                    job = asyncio.create_task(self._serve(item))
                    self._serving.add(job)
                    job.add_done_callback(self._serving.discard)
        finally:
            for job in list(self._serving):
                job.cancel()

    async def _put(self, request_id: str, body: dict[str, Any]) -> bool:
        """Send one answer; False when the request is gone (or the server cannot be reached)."""
        try:
            answered = await self._request(
                "PUT", f"/agents/{self._host_id}/requests/{request_id}", json=body, ok=(204,), gone_ok=True
            )
        except (Unreachable, Refused) as exc:
            log.debug("answer to request %s failed: %s", request_id, exc)
            return False
        return answered is not None

    async def _serve(self, item: dict[str, Any]) -> None:
        request_id = str(item.get("id"))
        params = item.get("params") or {}
        from graphium.docker.engine import DockerEngine  # docker-py: the agent's engine has it already

        try:
            engine = self._engine
            if not isinstance(engine, DockerEngine):
                raise GraphiumError("this agent's engine cannot serve live reads")
            if item.get("kind") == "ps":
                rows = await list_live(engine, params.get("stack"))
                result = LiveHost(host=self._host_id, containers=rows).dump()
                await self._put(request_id, {"result": result, "done": True})
            elif item.get("kind") == "logs":
                await self._logs(engine, request_id, params)
            else:
                raise GraphiumError(f"unknown request kind {item.get('kind')!r}")
        except GraphiumError as exc:
            await self._put(request_id, {"error": str(exc), "done": True})

    async def _logs(self, engine: DockerEngine, request_id: str, params: dict[str, Any]) -> None:
        options = LogOptions(
            follow=bool(params.get("follow")),
            tail=None if params.get("tail") is None else int(params["tail"]),
            since=None if params.get("since") is None else float(params["since"]),
        )
        pending: list[str] = []
        stream = asyncio.create_task(
            stream_stack_logs(
                engine, str(params.get("stack")), params.get("container"), options, pending.append
            )
        )
        loop = asyncio.get_running_loop()
        last = loop.time()
        try:
            while not stream.done():
                await asyncio.wait({stream}, timeout=FLUSH)
                if pending or loop.time() - last >= KEEPALIVE:
                    batch, pending[:] = pending[:MAX_BATCH], pending[MAX_BATCH:]
                    if not await self._put(request_id, {"lines": batch}):
                        return  # the asker left: stop reading
                    last = loop.time()
            count = stream.result()
            while len(pending) > MAX_BATCH:
                batch, pending[:] = pending[:MAX_BATCH], pending[MAX_BATCH:]
                await self._put(request_id, {"lines": batch})
            await self._put(request_id, {"lines": pending, "done": True, "count": count})
        finally:
            stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, GraphiumError):
                await stream
