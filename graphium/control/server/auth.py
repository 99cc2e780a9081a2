"""Bearer tokens for the control server: admin tokens, and agent tokens bound to one host.

Only a token's sha256 is stored, so a leaked tokens file does not let anyone in; tokens are long
random strings, so a plain hash (no salt, no stretching) is enough. The file is written with mode
0600 through a temp file and a rename, so a crash never leaves it half written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from graphium.errors import GraphiumError
from graphium.store.files import FileIdentity, atomic_write, file_identity

Role = Literal["admin", "agent"]
ROLES: tuple[Role, ...] = ("admin", "agent")


class TokenFileError(GraphiumError):
    """The tokens file is missing, unreadable or malformed."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: an admin, or the agent of one host."""

    token_id: str
    role: Role
    host_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_access_host(self, host_id: str) -> bool:
        return self.is_admin or self.host_id == host_id


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_tokens(tokens_file: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The token entries of the file; an absent file has none."""
    path = Path(tokens_file)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise TokenFileError(f"{path}: cannot read the tokens file: {exc.strerror}") from exc
    try:
        data = json.loads(raw) if raw.strip() else {"tokens": []}
    except ValueError as exc:
        raise TokenFileError(f"{path}: not valid JSON: {exc}") from exc
    tokens = data.get("tokens") if isinstance(data, dict) else None
    if not isinstance(tokens, list):
        raise TokenFileError(f"{path}: expected an object with a 'tokens' list")
    for index, entry in enumerate(tokens):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("hash"), str)
            or entry.get("role") not in ROLES
            or (entry["role"] == "agent" and not isinstance(entry.get("hostId"), str))
        ):
            raise TokenFileError(
                f"{path}: tokens[{index}]: needs 'hash', 'role' (admin|agent), agent: 'hostId'"
            )
    return tokens


def _write_tokens(path: Path, tokens: list[dict[str, Any]]) -> None:
    atomic_write(path, (json.dumps({"tokens": tokens}, indent=2) + "\n").encode(), mode=0o600)


def create_token(tokens_file: str | os.PathLike[str], role: str, host_id: str | None) -> str:
    """Add a token to the file and return it; only its hash is kept, so this is the one chance to see it."""
    if role not in ROLES:
        raise TokenFileError(f"unknown role {role!r}: expected admin or agent")
    if role == "agent" and not host_id:
        raise TokenFileError("an agent token needs the host id it is bound to")
    if role == "admin" and host_id:
        raise TokenFileError("an admin token is not bound to a host")
    path = Path(tokens_file)
    tokens = read_tokens(path)
    token = secrets.token_urlsafe(32)
    entry: dict[str, Any] = {
        "id": secrets.token_hex(6),
        "hash": hash_token(token),
        "role": role,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if host_id:
        entry["hostId"] = host_id
    _write_tokens(path, [*tokens, entry])
    return token


class TokenRegistry:
    """Looks up callers by token; reloads the file when it changes, so new tokens work at once."""

    def __init__(self, tokens_file: str | os.PathLike[str]) -> None:
        self.path = Path(tokens_file)
        self._identity: FileIdentity | None = None
        self._entries: list[dict[str, Any]] = []
        self.reload()

    def reload(self) -> None:
        identity = file_identity(self.path)
        if identity != self._identity or identity is None:
            self._entries = read_tokens(self.path)
            self._identity = identity

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Principal | None:
        """The principal for ``token``, or None; every entry is compared, in constant time each."""
        with suppress(TokenFileError):  # keep the last good set rather than lock everyone out
            self.reload()
        digest = hash_token(token)
        found: dict[str, Any] | None = None
        for entry in self._entries:
            if hmac.compare_digest(digest, entry["hash"]):
                found = entry
        if found is None:
            return None
        return Principal(token_id=str(found.get("id", "")), role=found["role"], host_id=found.get("hostId"))


__all__ = ["Principal", "TokenFileError", "TokenRegistry", "create_token", "hash_token", "read_tokens"]
