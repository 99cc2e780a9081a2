"""Open the task store a location names: a PostgreSQL URL, or a JSON file's path.

Every ``--state``/``--store`` goes through :func:`open_store`, so each command and the server accept
both backends the same way. The PostgreSQL store (and psycopg) is imported only when a URL asks
for it: commands on the JSON file never pay for it.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # this module is imported by every command: the stores only when opened
    from graphium.store.base import TaskStore

DEFAULT_STATE = ".graphium/state.json"  # the store file when none is named (--state, GRAPHIUM_STATE)
DATABASE_SCHEMES = ("postgresql", "postgres")


def is_database_url(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() in DATABASE_SCHEMES


def mask_url(location: str) -> str:
    """``location`` with any password replaced by ``***``: for reprs, errors and logs."""
    if not is_database_url(location):
        return location
    try:
        parts = urllib.parse.urlsplit(location)
        if parts.password is None:
            masked = parts.netloc
        else:
            user = parts.username or ""
            host = parts.netloc.rpartition("@")[2]
            masked = f"{user}:***@{host}"
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        hidden = [(k, "***" if k.lower() == "password" else v) for k, v in query]
        return urllib.parse.urlunsplit(
            (parts.scheme, masked, parts.path, urllib.parse.urlencode(hidden, safe="*"), parts.fragment)
        )
    except ValueError:  # unparseable: show only the scheme rather than risk a secret
        return location.partition("://")[0] + "://***"


def open_store(location: str) -> TaskStore:
    """The store at ``location``: a :class:`~graphium.store.postgres.PostgresTaskStore` for a
    database URL, else a :class:`~graphium.store.json_store.JsonTaskStore` on that file."""
    if is_database_url(location):
        from graphium.store.postgres import PostgresTaskStore

        return PostgresTaskStore(location)
    from graphium.store.json_store import JsonTaskStore

    return JsonTaskStore(location)


__all__ = ["DATABASE_SCHEMES", "DEFAULT_STATE", "is_database_url", "mask_url", "open_store"]
