"""The request channel: live reads (``ps``, ``logs``) that the server relays to a host's agent.

An agent host may sit behind NAT, so the server cannot call it: the agent long-polls
``GET /agents/{host}/requests`` beside its claims and answers each request with
``PUT /agents/{host}/requests/{id}`` (one result, or batches of log lines until done). Requests
are not tasks: they change nothing, are worth nothing after their asker left, and so live in
memory only, each bounded in time; a request no agent picks up in time fails with the host's
presence ("no live agent for vm2, last seen 45 s ago").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LiveRequest", "RequestBroker"]

#: After this, a request nobody picked up is dropped (its asker has given up by then).
PICKUP_TIMEOUT = 10.0


@dataclass
class LiveRequest:
    """One read asked of one host's agent; its answers arrive on ``answers``."""

    id: str
    host: str
    kind: str  # "ps" or "logs"
    params: dict[str, Any]
    picked: bool = False
    answers: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "params": self.params}


class RequestBroker:
    """Pending and open requests per host, and the agents' long-polls waiting for them."""

    def __init__(self) -> None:
        self._open: dict[str, LiveRequest] = {}
        self._posted: dict[str, asyncio.Event] = {}
        self._seq = itertools.count(1)

    def _event(self, host: str) -> asyncio.Event:
        return self._posted.setdefault(host, asyncio.Event())

    @contextlib.contextmanager
    def open(self, host: str, kind: str, params: dict[str, Any]) -> Any:
        """A request for ``host``'s agent, open while the ``with`` block runs (the asker waits on
        its ``answers``); leaving the block withdraws it, so a late agent is told it is gone."""
        request = LiveRequest(f"r{next(self._seq)}-{secrets.token_hex(4)}", host, kind, params)
        self._open[request.id] = request
        self._event(host).set()
        try:
            yield request
        finally:
            self._open.pop(request.id, None)

    def _unpicked(self, host: str) -> list[LiveRequest]:
        return [r for r in self._open.values() if r.host == host and not r.picked]

    async def wait(self, host: str, timeout: float) -> list[LiveRequest]:
        """The host's requests not yet handed out, waiting up to ``timeout`` for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self._unpicked(host)
            if found:
                for request in found:
                    request.picked = True
                return found
            event = self._event(host)
            event.clear()
            left = deadline - loop.time()
            if left <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), left)

    def answer(self, host: str, request_id: str, body: dict[str, Any]) -> bool:
        """Deliver one answer; False when the request is gone (its asker left)."""
        request = self._open.get(request_id)
        if request is None or request.host != host:
            return False
        request.answers.put_nowait(body)
        return True

    async def ask(self, host: str, kind: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request, one answer (``ps``): the agent's result, or ``{"error": ...}``."""
        with self.open(host, kind, params) as request:
            try:
                return await asyncio.wait_for(request.answers.get(), timeout)
            except TimeoutError:
                what = "picked up" if not request.picked else "answered"
                return {"error": f"the agent of host {host} has not {what} the request within {timeout:g}s"}
