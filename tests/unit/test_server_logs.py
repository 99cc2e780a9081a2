"""The log filter that keeps credentials in URLs out of the server's log."""

from __future__ import annotations

import logging

from graphium.control.server.logs import TokenRedactor, redact_urls


def test_credential_parameters_are_redacted_and_others_kept() -> None:
    line = '10.0.0.1:5 - "WebSocket /api/v1/events/ws?after=3&token=abc.DEF-_~1&stackId=web" 403'
    assert (
        redact_urls(line)
        == '10.0.0.1:5 - "WebSocket /api/v1/events/ws?after=3&token=(redacted)&stackId=web" 403'
    )
    assert redact_urls("GET /x?access_token=s3&api_key=k&password=p HTTP/1.1") == (
        "GET /x?access_token=(redacted)&api_key=(redacted)&password=(redacted) HTTP/1.1"
    )
    assert (
        redact_urls("GET /api/v1/tasks?stackId=token HTTP/1.1") == "GET /api/v1/tasks?stackId=token HTTP/1.1"
    )


def test_the_filter_rewrites_the_formatted_message() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s"', ("ip", "GET", "/x?token=t0p"), None
    )
    assert TokenRedactor().filter(record)
    assert record.getMessage() == 'ip - "GET /x?token=(redacted)"'
