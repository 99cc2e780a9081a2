"""Rendering dashboard pages: one Jinja2 environment over the package's templates, autoescaped.

Every page goes out with a Content-Security-Policy that allows only this server's own scripts and
styles (no inline script, no CDN, no framing), so an escaped-but-odd value in a stack file cannot
turn into script even if a template slipped.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from graphium.control.server.web.session import CSRF_FIELD, Session

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_URL = "/web/static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ago"] = ago
    env.globals["static"] = STATIC_URL
    env.globals["csrf_field"] = CSRF_FIELD
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(
    request: Request, template: str, session: Session | None, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A full page: the template with the session's CSRF token and the current path."""
    html = render(
        template,
        csrf=session.csrf if session else "",
        signed_in=session is not None,
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def ago(stamp: str | datetime | None, now: datetime | None = None) -> str:
    """``"12 s ago"``, ``"3 min ago"``: last changes read faster as ages than as timestamps."""
    if not stamp:
        return "never"
    try:
        when = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
    except ValueError:
        return str(stamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - when).total_seconds()))
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "STATIC_URL", "ago", "environment", "page", "render"]
