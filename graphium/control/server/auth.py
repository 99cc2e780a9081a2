"""Bearer tokens for the control server: admin tokens, and agent tokens bound to one host.

Only a token's sha256 is stored, so a leaked tokens file does not let anyone in; tokens are long
random strings, so a plain hash (no salt, no stretching) is enough. The file is written with mode
0600 through a temp file and a rename, so a crash never leaves it half written. The server
rereads it when it changes, so a created token works and a revoked one is refused at once.

When each token was last used is kept in memory by the server and flushed, at most every
USAGE_FLUSH_SECONDS, to a usage file beside the tokens file (``tokens.usage.json``): a request
costs no durable write, and the tokens file stays the CLI's alone (a server writing it would race
``token create``/``revoke`` and make every server reload it).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from graphium.errors import GraphiumError
from graphium.store.files import FileIdentity, atomic_write, file_identity

Role = Literal["admin", "agent"]
ROLES: tuple[Role, ...] = ("admin", "agent")
USAGE_FLUSH_SECONDS = 30.0


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


@contextmanager
def _editing(path: Path) -> Iterator[None]:
    """One read-modify-write of the tokens file at a time, across processes: two `token create`
    at once must not lose either token (an advisory lock on a sibling file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def create_token(tokens_file: str | os.PathLike[str], role: str, host_id: str | None) -> str:
    """Add a token to the file and return it; only its hash is kept, so this is the one chance to see it."""
    if role not in ROLES:
        raise TokenFileError(f"unknown role {role!r}: expected admin or agent")
    if role == "agent" and not host_id:
        raise TokenFileError("an agent token needs the host id it is bound to")
    if role == "admin" and host_id:
        raise TokenFileError("an admin token is not bound to a host")
    path = Path(tokens_file)
    token = secrets.token_urlsafe(32)
    entry: dict[str, Any] = {
        "id": secrets.token_hex(6),
        "hash": hash_token(token),
        "role": role,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if host_id:
        entry["hostId"] = host_id
    with _editing(path):
        _write_tokens(path, [*read_tokens(path), entry])
    return token


def usage_path(tokens_file: str | os.PathLike[str]) -> Path:
    """The file the server records each token's last use in (token id -> ISO time)."""
    path = Path(tokens_file)
    return path.with_name(f"{path.stem}.usage.json")


def read_usage(tokens_file: str | os.PathLike[str]) -> dict[str, str]:
    """Token id -> when it was last used (ISO 8601 UTC); unreadable or absent reads as none."""
    try:
        data = json.loads(usage_path(tokens_file).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


@dataclass(frozen=True)
class TokenInfo:
    """What an operator may see of a token: never the token, nor its hash."""

    id: str
    role: Role
    host_id: str | None
    created: str | None
    last_used: str | None

    def dump(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "hostId": self.host_id,
            "created": self.created,
            "lastUsed": self.last_used,
        }


def list_tokens(tokens_file: str | os.PathLike[str]) -> list[TokenInfo]:
    """Every token of the file, with when the server last saw it used (None: never, or not yet flushed)."""
    used = read_usage(tokens_file)
    return [
        TokenInfo(
            id=str(entry.get("id", "")),
            role=entry["role"],
            host_id=entry.get("hostId"),
            created=entry.get("created"),
            last_used=used.get(str(entry.get("id", ""))),
        )
        for entry in read_tokens(tokens_file)
    ]


def revoke_token(tokens_file: str | os.PathLike[str], token_id: str) -> TokenInfo:
    """Remove the token ``token_id`` from the file; a running server refuses it from its next request."""
    path = Path(tokens_file)
    with _editing(path):
        tokens = read_tokens(path)
        kept = [entry for entry in tokens if entry.get("id") != token_id]
        if len(kept) == len(tokens):
            raise TokenFileError(f"{path}: no token with id {token_id!r} (see `graphium-run token list`)")
        [info] = [t for t in list_tokens(path) if t.id == token_id]
        _write_tokens(path, kept)
    return info


class TokenRegistry:
    """Looks up callers by token; reloads the file when it changes, so new tokens work at once."""

    def __init__(self, tokens_file: str | os.PathLike[str]) -> None:
        self.path = Path(tokens_file)
        self._identity: FileIdentity | None = None
        self._entries: list[dict[str, Any]] = []
        self._used: dict[str, float] = {}  # token id -> last use (epoch s), not yet flushed
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
        token_id = str(found.get("id", ""))
        self._used[token_id] = time.time()
        return Principal(token_id=token_id, role=found["role"], host_id=found.get("hostId"))

    def flush_usage(self) -> None:
        """Write the last uses seen since the previous flush into the usage file, merged under a
        file lock: another server on the same tokens file (a replica) may have seen later ones,
        and two replicas flushing at once must not lose each other's."""
        if not self._used:
            return
        used, self._used = self._used, {}
        target = usage_path(self.path)
        try:
            with _editing(target):  # replicas sharing the tokens file merge one at a time
                merged = read_usage(self.path)
                for token_id, when in used.items():
                    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")
                    merged[token_id] = max(merged.get(token_id, ""), stamp)
                atomic_write(target, (json.dumps(merged, indent=2) + "\n").encode(), mode=0o600)
        except OSError:
            self._used = {**used, **self._used}  # kept for the next flush
            raise

    async def flush_usage_every(self, seconds: float = USAGE_FLUSH_SECONDS) -> None:
        """Flush the usage every ``seconds`` until cancelled, and once more then (server lifespan)."""
        try:
            while True:
                await asyncio.sleep(seconds)
                with suppress(OSError):  # a full disk must not stop the server; the next flush retries
                    await asyncio.to_thread(self.flush_usage)
        finally:
            with suppress(OSError):
                self.flush_usage()


__all__ = [
    "USAGE_FLUSH_SECONDS",
    "Principal",
    "TokenFileError",
    "TokenInfo",
    "TokenRegistry",
    "create_token",
    "hash_token",
    "list_tokens",
    "read_tokens",
    "read_usage",
    "revoke_token",
    "usage_path",
]
