"""Which addresses count as loopback for the plain-HTTP rule, and the pairing of TLS options."""

from __future__ import annotations

import pytest

from graphium.control.server.listen import is_loopback, plan_listen
from graphium.errors import GraphiumError


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback(host: str) -> None:
    assert is_loopback(host)
    assert plan_listen(host, 1, cert=None, key=None, insecure_http=False).scheme == "http"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.231.0.1", "192.0.2.7", "no-such-host.invalid"])
def test_not_loopback(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(GraphiumError, match=f"refusing to serve plain HTTP on {host}"):
        plan_listen(host, 1, cert=None, key=None, insecure_http=False)
    listen = plan_listen(host, 1, cert=None, key=None, insecure_http=True)
    assert listen.scheme == "http" and listen.warning and "--insecure-http" in listen.warning


def test_cert_and_key_go_together() -> None:
    for cert, key in (("c.pem", None), (None, "k.pem")):
        with pytest.raises(GraphiumError, match="go together"):
            plan_listen("127.0.0.1", 1, cert=cert, key=key, insecure_http=False)
