"""Keeping tokens out of the server's logs.

Tokens travel in the Authorization header or a WebSocket's first message, which nothing logs; a
client that still puts one in a URL (``?token=``, the old WebSocket form, refused now) would have
it written by uvicorn's access and connection lines. This filter rewrites such values before any
handler sees the record.
"""

from __future__ import annotations

import logging
import re

__all__ = ["REDACTED", "TokenRedactor", "redact_server_logs", "redact_urls"]

REDACTED = "(redacted)"
# a query parameter whose name says it carries a credential
_SECRET_PARAM_RE = re.compile(
    r"(?i)([?&;](?:[a-z0-9_.-]*(?:token|secret|password|passwd|api[_-]?key|auth))=)[^&;#\s\"']*"
)
_LOGGERS = ("uvicorn.access", "uvicorn.error")  # where uvicorn writes request and WebSocket lines


def redact_urls(text: str) -> str:
    """``text`` with the values of credential-like query parameters replaced."""
    return _SECRET_PARAM_RE.sub(rf"\1{REDACTED}", text)


class TokenRedactor(logging.Filter):
    """Formats the record's message once and redacts it (the args may hold the URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_urls(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def redact_server_logs() -> None:
    """Install the redactor on the loggers the server's requests are written to (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactor) for f in logger.filters):
            logger.addFilter(TokenRedactor())
