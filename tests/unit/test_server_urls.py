"""The ``--server URL1,URL2`` list: what is accepted, the errors for what is not, and the
bookkeeping of which replica is in use."""

from __future__ import annotations

import logging

import pytest

from graphium.control.servers import ServerList, parse_server_urls
from graphium.errors import GraphiumError


def test_one_url_and_several() -> None:
    assert parse_server_urls("https://a:8095") == ("https://a:8095",)
    assert parse_server_urls("https://a:8095/, https://b:8095") == ("https://a:8095", "https://b:8095")
    assert parse_server_urls(["http://127.0.0.1:1", "http://[::1]:2/prefix"]) == (
        "http://127.0.0.1:1",
        "http://[::1]:2/prefix",
    )


def test_a_replica_named_twice_is_kept_once() -> None:
    assert parse_server_urls("https://a,https://b,https://a/") == ("https://a", "https://b")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "https://a,ftp://b",
            "server URL 2 of 2: server URL must start with http:// or https://, got 'ftp://b'",
        ),
        ("a:8095", "server URL: server URL must start with http:// or https://"),
        ("https://a,,https://b", "server URL 2 of 3 is empty"),
        ("https://a,", "server URL 2 of 2 is empty"),
        ("", "server URL is empty"),
        ("https://", "server URL has no host"),
        ("https://a:99999", "server URL: not a valid URL"),
        ("https://a:port", "server URL: not a valid URL"),
        ("https://a?x=1", "no ?query or #fragment"),
    ],
)
def test_bad_urls_are_named(value: str, message: str) -> None:
    with pytest.raises(GraphiumError) as caught:
        parse_server_urls(value)
    assert message in str(caught.value)


def test_a_password_in_a_url_is_refused_and_never_echoed() -> None:
    with pytest.raises(GraphiumError) as caught:
        parse_server_urls("https://ok:8095,https://admin:s3cret-pw@b:8095")
    assert "server URL 2 of 2: no user or password" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


def test_the_list_moves_on_once_per_failure_and_keeps_what_answers(caplog: pytest.LogCaptureFixture) -> None:
    servers = ServerList("https://a,https://b,https://c")
    assert servers.order() == [0, 1, 2] and servers.url == "https://a"
    with caplog.at_level(logging.INFO, logger="graphium.control"):
        servers.failed(0, "connection refused")
        servers.failed(0, "connection refused")  # a second request failing on a: moved already
        assert servers.url == "https://b" and servers.order() == [1, 2, 0]
        servers.answered(2)
    assert "server https://a unavailable (connection refused); switching to https://b" in caplog.text
    assert caplog.text.count("switching") == 1
    assert servers.url == "https://c" and servers.order() == [2, 0, 1]
    assert "now using server https://c" in caplog.text
    servers.failed(2, "reset")
    assert servers.url == "https://a"  # round the list


def test_one_server_never_moves() -> None:
    servers = ServerList(["https://only"])
    servers.failed(0, "down")
    assert servers.url == "https://only" and servers.order() == [0]
