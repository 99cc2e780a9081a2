"""Signing in and out: an admin token typed into a form becomes a session cookie.

Agent tokens are refused: they are bound to one host and meant for machines, and a dashboard
session can deploy anywhere. The sign-in form is protected by a double-submit cookie (there is no
session to hold its CSRF token yet); sign-out is an ordinary CSRF-checked form.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from graphium.control.server.state import Server
from graphium.control.server.web.forms import Posted, posted_form
from graphium.control.server.web.render import page
from graphium.control.server.web.session import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    clear_cookie,
    current_session,
    safe_next,
    sessions_of,
    set_cookie,
)

router = APIRouter(include_in_schema=False)

MAX_TOKEN_LENGTH = 512


@router.get("/")
@router.get("/web")
@router.get("/web/")
async def home() -> RedirectResponse:
    return RedirectResponse("/web/stacks", status_code=303)


@router.get("/web/signin")
async def signin_form(request: Request, next: str | None = None) -> Response:
    if current_session(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, next, None, 200)


def _form(request: Request, next: str | None, error: str | None, status: int) -> Response:
    nonce = secrets.token_urlsafe(32)
    # the form's CSRF token, as the page's hidden field and as a cookie; POST needs both equal
    response = page(
        request, "signin.html", None, status=status, error=error, next=safe_next(next), nonce=nonce
    )
    set_cookie(response, request, SIGNIN_COOKIE, nonce, max_age=3600)
    return response


@router.post("/web/signin")
async def signin(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    next_ = form.get("next")
    target = next_ if isinstance(next_, str) else None
    sent, cookie = form.get(CSRF_FIELD), request.cookies.get(SIGNIN_COOKIE, "")
    if not isinstance(sent, str) or not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return _form(request, target, "The form expired or came from elsewhere: sign in again.", 403)
    token = form.get("token")
    if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_LENGTH:
        return _form(request, target, "Paste an admin token.", 400)
    srv: Server = request.app.state.server
    who = srv.tokens.authenticate(token.strip())
    if who is None:
        return _form(request, target, "Unknown token.", 401)
    if not who.is_admin:
        return _form(request, target, "Agent tokens cannot sign in: use an admin token.", 403)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        sessions_of(request).end(old)  # a fresh id at every sign-in: no session fixation
    session = sessions_of(request).create(token.strip(), who)
    response = RedirectResponse(safe_next(target), status_code=303)
    set_cookie(response, request, SESSION_COOKIE, session.id, max_age=None)
    clear_cookie(response, request, SIGNIN_COOKIE)
    return response


@router.post("/web/signout")
async def signout(request: Request) -> Response:
    posted = await posted_form(request)
    if not isinstance(posted, Posted):
        return posted
    sessions_of(request).end(posted.session.id)
    response = RedirectResponse("/web/signin", status_code=303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response


__all__ = ["router"]
