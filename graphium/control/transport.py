"""The control plane's HTTP transport: the one module that imports httpx.

The agent (async, long-polling) and the CLI's server client (sync) build their connections here,
so how graphium reaches its server (base path, bearer token, timeouts, connection limits, and
later TLS verification) is decided in one place.
"""

from __future__ import annotations

import logging

import httpx

API = "/api/v1"

AsyncClient = httpx.AsyncClient
Client = httpx.Client
Response = httpx.Response
HTTPError = httpx.HTTPError  # any failure to get an answer, for callers that only say so
TransportError = httpx.TransportError  # the request may not have reached the server: retry


def _base(url: str) -> str:
    return url.rstrip("/") + API


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_client(url: str, token: str, *, timeout: float) -> httpx.Client:
    """A blocking client of the server's API at ``url``, sending ``token`` on every request."""
    return httpx.Client(base_url=_base(url), headers=_auth(token), timeout=timeout)


def async_api_client(url: str, token: str, *, read_timeout: float, max_connections: int) -> httpx.AsyncClient:
    """An async client for long-polls: reads may wait ``read_timeout``, connects 10 s at most."""
    return httpx.AsyncClient(
        base_url=_base(url),
        headers=_auth(token),
        timeout=httpx.Timeout(10.0, read=read_timeout),
        limits=httpx.Limits(max_connections=max_connections),
    )


def quiet_request_logs() -> None:
    """Request lines are noise in an agent's log, and headers (the token) must never show."""
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = [
    "API",
    "AsyncClient",
    "Client",
    "HTTPError",
    "Response",
    "TransportError",
    "api_client",
    "async_api_client",
    "quiet_request_logs",
]
