"""Posted forms: every POST of the dashboard carries the session's CSRF token, checked here.

A form whose token does not match (a forged post, or a tab left open across a new sign-in) gets
a page saying so, and nothing it asked for is done.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request
from fastapi.datastructures import FormData
from fastapi.responses import Response

from graphium.control.server.web.render import page
from graphium.control.server.web.session import CSRF_FIELD, Session, current_session, sign_in_first

MAX_FIELDS = 200


@dataclass(frozen=True)
class Posted:
    """A form posted by a signed-in browser whose CSRF token matched."""

    session: Session
    form: FormData


async def posted_form(request: Request) -> Posted | Response:
    """The form once its CSRF field matches the session's; else the page to answer with (403),
    or a redirect to the sign-in page when there is no session."""
    session = current_session(request)
    if session is None:
        raise sign_in_first(request)
    form = await request.form(max_files=1, max_fields=MAX_FIELDS)
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        return page(request, "refused.html", session, status=403)
    return Posted(session, form)


__all__ = ["Posted", "posted_form"]
