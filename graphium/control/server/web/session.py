"""Dashboard sessions: a token typed once, then an opaque cookie that maps to it server-side.

The cookie carries a random session id, never the token; the token stays in this process's memory
so that every request re-authenticates it (a revoked or deleted token ends its sessions at once).
Each session has its own CSRF token, which every form carries in a hidden field and every POST must
echo back. The sign-in form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import Response

from graphium.control.server.auth import Principal
from graphium.control.server.state import Server

SESSION_COOKIE = "graphium_session"
SIGNIN_COOKIE = "graphium_signin"
SESSION_IDLE_SECONDS = 8 * 3600.0
MAX_SESSIONS = 1000
CSRF_FIELD = "csrf"


@dataclass
class Session:
    """One signed-in browser: its principal, its CSRF token, and plans it previewed."""

    id: str
    token: str = field(repr=False)
    principal: Principal
    csrf: str
    last_seen: float
    plans: dict[str, Any] = field(default_factory=dict, repr=False)  # preview id -> PendingPlan


class Sessions:
    """The dashboard's sessions, in memory: a server restart signs everyone out, by design."""

    def __init__(self, idle_seconds: float = SESSION_IDLE_SECONDS) -> None:
        self._by_id: dict[str, Session] = {}
        self.idle_seconds = idle_seconds

    def create(self, token: str, principal: Principal) -> Session:
        self._expire()
        if len(self._by_id) >= MAX_SESSIONS:  # drop the least recently used
            oldest = min(self._by_id.values(), key=lambda s: s.last_seen)
            del self._by_id[oldest.id]
        session = Session(
            id=secrets.token_urlsafe(32),
            token=token,
            principal=principal,
            csrf=secrets.token_urlsafe(32),
            last_seen=time.monotonic(),
        )
        self._by_id[session.id] = session
        return session

    def get(self, session_id: str, srv: Server) -> Session | None:
        """The live session for a cookie value, its token re-checked; None when gone or revoked."""
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        who = srv.tokens.authenticate(session.token)
        if now - session.last_seen > self.idle_seconds or who is None or not who.is_admin:
            del self._by_id[session_id]
            return None
        session.last_seen = now
        session.principal = who
        return session

    def end(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [s.id for s in self._by_id.values() if now - s.last_seen > self.idle_seconds]:
            del self._by_id[sid]


def sessions_of(request: Request) -> Sessions:
    """The app's sessions, made on first use (the dashboard keeps its state on the app, beside
    the server's)."""
    state = request.app.state
    found: Sessions | None = getattr(state, "web_sessions", None)
    if found is None:
        found = Sessions()
        state.web_sessions = found
    return found


def current_session(request: Request) -> Session | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    srv: Server = request.app.state.server
    return sessions_of(request).get(cookie, srv)


def sign_in_first(request: Request) -> HTTPException:
    """A redirect (303) to the sign-in page, which brings the browser back here afterwards."""
    path = request.url.path
    back = path.removesuffix("/events") if request.method == "GET" else "/web/stacks"
    return HTTPException(303, "sign in first", headers={"Location": f"/web/signin?next={quote(back)}"})


async def signed_in(request: Request) -> Session:
    """Dependency: the caller's session, or a redirect to the sign-in page."""
    session = current_session(request)
    if session is None:
        raise sign_in_first(request)
    return session


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path only (never another site)."""
    if target and target.startswith("/web/") and "//" not in target and "\\" not in target:
        return target
    return "/web/stacks"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    """A cookie scripts cannot read, never sent cross-site, and only over TLS when served over TLS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


__all__ = [
    "CSRF_FIELD",
    "SESSION_COOKIE",
    "SIGNIN_COOKIE",
    "Session",
    "Sessions",
    "clear_cookie",
    "current_session",
    "safe_next",
    "sessions_of",
    "set_cookie",
    "sign_in_first",
    "signed_in",
]
