"""The agent's requests to its servers: one async client per replica, failover between them.

Every request of the agent may go to another replica, whether or not the first one got it:
reads, registration, observations and heartbeats are idempotent; a status report the store
already holds is answered 200 again (see the task routes); and a claim whose answer was lost is
undone by the agent (it gives back the tasks claimed for it that it never received). So unlike
the CLI's POSTs, nothing here needs to know whether a failed request reached its server.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from typing import Any

from graphium.control import transport
from graphium.control.reporter import Refused, Unreachable
from graphium.control.servers import ServerList

__all__ = ["ServerCalls"]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ServerCalls:
    """The agent's one way to call the server (see the module); :attr:`failovers` counts the
    attempts that did not get through to the server in use, so a caller can tell that a request
    may have reached a server it never heard back from."""

    def __init__(
        self, urls: str | Sequence[str], token: str, tls: ssl.SSLContext, *, logger: logging.Logger
    ) -> None:
        self.servers = ServerList(urls, logger=logger)
        self._token = token
        self._tls = tls
        self._clients: list[transport.AsyncClient] = []
        self.failovers = 0

    def open(self, *, read_timeout: float, max_connections: int) -> None:
        self._clients = [
            transport.async_api_client(
                url, self._token, read_timeout=read_timeout, max_connections=max_connections, tls=self._tls
            )
            for url in self.servers.urls
        ]

    async def close(self) -> None:
        for http in self._clients:
            await http.aclose()
        self._clients = []

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
        gone_ok: bool = False,
        pinned: int | None = None,
        single: bool = False,
    ) -> transport.Response | None:
        """One request, to the server in use and, when it cannot get through there (no
        connection, a reset, a 502/503/504), to the next ones in turn; ``pinned``: to that server
        only, leaving the one in use as it is; ``single``: to the server in use only, moving on
        from it when it cannot get through (the caller retries: a claim does, after giving back
        what the lost attempt may have claimed). Returns the response for an ``ok`` status, None
        for 409/404 when ``gone_ok`` (the task is no longer ours), raises Unreachable (retry
        later) or Refused."""
        assert self._clients, "open() first"
        order = [pinned] if pinned is not None else self.servers.order()[: 1 if single else None]
        failure = Unreachable("no server")
        for index in order:
            try:
                response = await self._clients[index].request(method, url, json=json, params=params)
            except transport.TransportError as exc:
                failure = Unreachable(_describe(exc))
            else:
                if response.status_code not in transport.FAILOVER_CODES or index == order[-1]:
                    if pinned is None:
                        self.servers.answered(index)
                    return _judged(response, method, url, ok, gone_ok)
                failure = Unreachable(f"{method} {url} answered {response.status_code}")
            if pinned is None:  # a pinned request (a replica's request channel) moves nothing
                self.failovers += 1
                self.servers.failed(index, str(failure))
        raise failure


def _judged(
    response: transport.Response, method: str, url: str, ok: tuple[int, ...], gone_ok: bool
) -> transport.Response | None:
    """What the agent makes of one answer: see :meth:`ServerCalls.request`."""
    code = response.status_code
    if code in ok:
        return response
    if gone_ok and code in (404, 409):
        return None
    detail = response.text[:300].strip()
    if code >= 500 or code in (408, 429):
        raise Unreachable(f"{method} {url} answered {code}: {detail}")
    if code in (401, 403):  # a token problem may be fixed on the server side: keep retrying
        raise Unreachable(f"{method} {url} answered {code} (check the agent token and --host-id): {detail}")
    raise Refused(f"{method} {url} answered {code}: {detail}")
