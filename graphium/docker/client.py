"""The docker-py client an engine adapter drives: one connection pool per engine.

docker-py (7.x, with requests >= 2.32) keys its unix-socket connection pools by the whole request
URL, so every distinct path (``/containers/<id>/start``, ``/containers/<id>/json``, …) opened a
fresh connection, and only 25 pools were kept. Over an SSH-forwarded socket each connection is a
new SSH channel (a round trip, and the engine accepting one more connection): a cold apply of 30
containers opened ~120 of them. Keying the pool by the socket instead lets every request reuse
a kept-alive connection, as docker-py did before.
"""

from __future__ import annotations

import math
from typing import Any

import docker
from docker.transport.unixconn import UnixHTTPAdapter

__all__ = ["api_client"]

_ONE_POOL = "http+docker://localhost"  # every request of an engine shares this pool


class _SharedPoolUnixAdapter(UnixHTTPAdapter):  # type: ignore[misc]
    """A unix-socket adapter with one pool for all paths (see the module docstring)."""

    def get_connection_with_tls_context(
        self, request: Any, verify: Any, proxies: Any = None, cert: Any = None
    ) -> Any:
        return self.get_connection(_ONE_POOL, proxies)


def api_client(base_url: str, *, timeout: float, pool_size: int) -> Any:
    """A low-level client for ``base_url`` (asks the engine its API version: a round trip)."""
    client = docker.APIClient(
        base_url=base_url, version="auto", timeout=max(1, math.ceil(timeout)), max_pool_size=pool_size
    )
    adapter = getattr(client, "_custom_adapter", None)
    if isinstance(adapter, UnixHTTPAdapter):
        shared = _SharedPoolUnixAdapter(
            adapter.socket_path, adapter.timeout, pool_connections=1, max_pool_size=adapter.max_pool_size
        )
        client.mount("http+docker://", shared)
        client._custom_adapter = shared
        adapter.close()
    return client
