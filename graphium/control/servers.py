"""Several control-server URLs for one client: the list, its checks, and which one is in use.

Replicas of the server share one store (PostgreSQL), so any of them can answer any request. An
agent or a CLI given ``--server URL1,URL2`` talks to one at a time and moves to the next when a
request cannot get through (see :func:`graphium.control.transport.may_fail_over`). This module is
pure (no HTTP): the CLI checks the list before anything is sent, and both clients share the
bookkeeping of which server answers now.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

from graphium.errors import GraphiumError

__all__ = ["ServerList", "parse_server_urls"]

log = logging.getLogger("graphium.control")


def _check_url(url: str, where: str) -> str:
    """One server URL, as given; GraphiumError naming ``where`` and what is expected."""
    if not url.startswith(("http://", "https://")):
        raise GraphiumError(f"{where}: server URL must start with http:// or https://, got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise GraphiumError(f"{where}: not a valid URL ({exc})") from None
    if not parts.hostname:
        raise GraphiumError(f"{where}: server URL has no host, got {url!r}")
    if parts.username is not None or parts.password is not None:
        # the token goes in a header; a password in the URL would show in logs and errors
        raise GraphiumError(f"{where}: no user or password in a server URL (the token authenticates)")
    if parts.query or parts.fragment:
        raise GraphiumError(f"{where}: a server URL has no ?query or #fragment, got {url!r}")
    return url.rstrip("/")


def parse_server_urls(value: str | Sequence[str]) -> tuple[str, ...]:
    """The server URLs of ``--server``/``GRAPHIUM_SERVER``: one URL, or several separated by
    commas (or a sequence of them), each checked; duplicates are kept once, order kept."""
    items = value.split(",") if isinstance(value, str) else list(value)
    urls: list[str] = []
    for index, raw in enumerate(items, start=1):
        item = raw.strip()
        where = f"server URL {index} of {len(items)}" if len(items) > 1 else "server URL"
        if not item:
            raise GraphiumError(f"{where} is empty (expected URL1,URL2 with no empty item)")
        url = _check_url(item, where)
        if url not in urls:
            urls.append(url)
    if not urls:
        raise GraphiumError("no server URL given")
    return tuple(urls)


class ServerList:
    """The servers of one client and the one in use; thread-safe.

    A request starts at :attr:`current`; when it cannot get through there, :meth:`failed` moves
    the list on (once per failure: concurrent requests that failed on the same server move it
    once) and says where to try next. A server that answers becomes the one in use, and each
    switch is logged once, with the URL only (tokens never sit in URLs here).
    """

    def __init__(self, urls: str | Sequence[str], *, logger: logging.Logger | None = None) -> None:
        self.urls = parse_server_urls(urls)
        self._index = 0
        self._guard = threading.Lock()
        self._log = logger or log

    def __len__(self) -> int:
        return len(self.urls)

    def __repr__(self) -> str:
        return f"ServerList({', '.join(self.urls)})"

    @property
    def current(self) -> int:
        return self._index

    @property
    def url(self) -> str:
        return self.urls[self._index]

    def order(self) -> list[int]:
        """The servers to try for one request: the one in use first, then the others in turn."""
        start = self._index
        return [(start + k) % len(self.urls) for k in range(len(self.urls))]

    def failed(self, index: int, why: str) -> None:
        """Server ``index`` could not be reached: move on from it (if it is still the one in use)."""
        if len(self.urls) == 1:
            return
        with self._guard:
            if self._index != index:
                return
            self._index = (index + 1) % len(self.urls)
            nxt = self.urls[self._index]
        self._log.warning("server %s unavailable (%s); switching to %s", self.urls[index], why, nxt)

    def answered(self, index: int) -> None:
        """Server ``index`` answered: it is the one in use from now on."""
        with self._guard:
            if self._index == index:
                return
            self._index = index
        self._log.info("now using server %s", self.urls[index])
