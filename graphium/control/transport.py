"""The control plane's HTTP transport: the one module that imports httpx.

The agent (async, long-polling) and the CLI's server client (sync) build their connections here,
so how graphium reaches its server (base path, bearer token, timeouts, connection limits, TLS
verification) is decided in one place. The server's certificate is always verified: against the
CA file the operator names (``--ca-cert``), or else the system trust store; there is no switch to
turn verification off. A certificate that does not verify surfaces as :class:`CertificateError`,
whose message says what to do, instead of a bare handshake failure.
"""

from __future__ import annotations

import logging
import ssl

import httpx

from graphium.errors import GraphiumError

API = "/api/v1"
CA_CERT_HINT = "pass --ca-cert FILE (env GRAPHIUM_CA_CERT) with the CA that signed its certificate"

AsyncClient = httpx.AsyncClient
Client = httpx.Client
Response = httpx.Response
HTTPError = httpx.HTTPError  # any failure to get an answer, for callers that only say so
TransportError = httpx.TransportError  # the request may not have reached the server: retry
#: Answers of a proxy or load balancer whose server is gone or going: another replica may answer.
FAILOVER_CODES = frozenset({502, 503, 504})
#: The one of them that says the request was not carried out (safe to send again anywhere).
UNAVAILABLE = 503


class CertificateError(httpx.ConnectError):
    """The server's certificate did not verify: a configuration problem more than an outage (the
    agent still retries it, since a renewed certificate or CA fixes it without a restart)."""


def tls_context(ca_cert: str | None = None) -> ssl.SSLContext:
    """How the server's certificate is verified: against ``ca_cert`` (PEM), or the system store.

    Raises GraphiumError naming the file when it is missing, unreadable or holds no certificate,
    so an agent or command fails at start rather than on its first request.
    """
    if ca_cert is None:
        return ssl.create_default_context()
    try:
        with open(ca_cert, "rb"):
            pass
        return ssl.create_default_context(cafile=ca_cert)
    except OSError as exc:
        raise GraphiumError(f"CA certificate {ca_cert}: cannot read it ({exc.strerror or exc})") from None
    except ssl.SSLError as exc:
        raise GraphiumError(
            f"CA certificate {ca_cert}: no PEM certificate in it ({exc.reason or exc})"
        ) from None


def _verify_failure(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a connect failure (httpx wraps httpcore's, which wraps ssl's)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _translated(request: httpx.Request, exc: httpx.TransportError) -> httpx.TransportError:
    """A connection failure that says what to do when TLS is the cause (or may be)."""
    origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
    if isinstance(exc, httpx.RemoteProtocolError):
        if request.url.scheme != "http":
            return exc
        return httpx.RemoteProtocolError(
            f"{exc} (if the server at {origin} serves HTTPS, use an https:// URL)", request=request
        )
    failure = _verify_failure(exc)
    if failure is None:
        return exc
    if isinstance(failure, ssl.SSLCertVerificationError):
        reason = failure.verify_message or failure.reason or str(failure)
        return CertificateError(
            f"cannot verify the graphium server at {origin}: certificate verify failed: {reason}; "
            + CA_CERT_HINT,
            request=request,
        )
    return httpx.ConnectError(
        f"TLS handshake with the graphium server at {origin} failed ({failure.reason or failure}); "
        "does it serve HTTPS (serve --tls-cert/--tls-key)?",
        request=request,
    )


class _HTTPTransport(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            raise _translated(request, exc) from exc


class _AsyncHTTPTransport(httpx.AsyncHTTPTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
            raise _translated(request, exc) from exc


def surely_not_sent(exc: BaseException) -> bool:
    """Whether the request failed before it reached any server (refused, unresolvable, TLS or
    connect timeout, no pooled connection free): then even a POST may go to another replica.
    A failure after that (a reset, a read timeout) leaves open whether the server acted on it."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _base(url: str) -> str:
    return url.rstrip("/") + API


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_client(url: str, token: str, *, timeout: float, tls: ssl.SSLContext | None = None) -> httpx.Client:
    """A blocking client of the server's API at ``url``, sending ``token`` on every request and
    verifying an https server with ``tls`` (default: the system trust store)."""
    verify = tls or tls_context()
    return httpx.Client(
        base_url=_base(url),
        headers=_auth(token),
        timeout=timeout,
        verify=verify,  # for the proxy transports httpx may mount from the environment
        transport=_HTTPTransport(verify=verify),
    )


def async_api_client(
    url: str, token: str, *, read_timeout: float, max_connections: int, tls: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """An async client for long-polls: reads may wait ``read_timeout``, connects 10 s at most;
    an https server is verified with ``tls`` (default: the system trust store)."""
    verify = tls or tls_context()
    limits = httpx.Limits(max_connections=max_connections)
    return httpx.AsyncClient(
        base_url=_base(url),
        headers=_auth(token),
        timeout=httpx.Timeout(10.0, read=read_timeout),
        verify=verify,
        limits=limits,
        transport=_AsyncHTTPTransport(verify=verify, limits=limits),
    )


def quiet_request_logs() -> None:
    """Request lines are noise in an agent's log, and headers (the token) must never show."""
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


__all__ = [
    "API",
    "CA_CERT_HINT",
    "FAILOVER_CODES",
    "UNAVAILABLE",
    "AsyncClient",
    "CertificateError",
    "Client",
    "HTTPError",
    "Response",
    "TransportError",
    "api_client",
    "async_api_client",
    "quiet_request_logs",
    "surely_not_sent",
    "tls_context",
]
