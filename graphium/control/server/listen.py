"""Where and how the server may listen: HTTPS with a certificate that loads, or plain HTTP only
on loopback unless the operator says otherwise, loudly.

Bearer tokens and stack secrets cross the wire on every request, so plain HTTP beyond the local
machine is refused by default, the way unverified SSH host keys are. Every check runs before the
socket is bound and fails with a GraphiumError naming the file or the address.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass

from graphium.errors import GraphiumError

INSECURE_HTTP_WARNING = (
    "WARNING: serving plain HTTP on {host} (--insecure-http); bearer tokens and stack secrets "
    "cross the network in clear: anyone on the network path can read them and impersonate "
    "your agents and admins. Serve HTTPS with --tls-cert/--tls-key."
)


@dataclass(frozen=True)
class Listen:
    """A checked listening plan: ``cert``/``key`` set for HTTPS, ``warning`` for plain HTTP
    on a non-loopback address allowed by ``--insecure-http``."""

    host: str
    port: int
    cert: str | None = None
    key: str | None = None
    warning: str | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (``0.0.0.0`` and ``::`` are not:
    they listen on every interface)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _readable(path: str, what: str) -> None:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise GraphiumError(f"TLS {what} {path}: cannot read it ({exc.strerror or exc})") from None


class _Encrypted(Exception):
    pass


def _no_password() -> bytes:
    raise _Encrypted  # OpenSSL would otherwise prompt for a passphrase on the terminal


def check_certificate(cert: str, key: str) -> None:
    """Load the pair the way the server will, saying which file is at fault when it fails."""
    _readable(cert, "certificate")
    _readable(key, "key")
    try:
        ssl.create_default_context().load_verify_locations(cafile=cert)
    except ssl.SSLError as exc:
        raise GraphiumError(
            f"TLS certificate {cert}: no PEM certificate in it ({exc.reason or exc})"
        ) from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert, key, password=_no_password)
    except _Encrypted:
        raise GraphiumError(f"TLS key {key}: it is encrypted; give the server an unencrypted key") from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise GraphiumError(f"TLS key {key} does not match the certificate {cert}") from None
        raise GraphiumError(f"TLS key {key}: not a usable PEM private key ({exc.reason or exc})") from None


def plan_listen(host: str, port: int, *, cert: str | None, key: str | None, insecure_http: bool) -> Listen:
    """Check the serving options; raise GraphiumError for any the server must not start with."""
    if (cert is None) != (key is None):
        raise GraphiumError("--tls-cert and --tls-key go together: give both, or neither")
    if cert is not None and key is not None:
        check_certificate(cert, key)
        return Listen(host, port, cert, key)
    if is_loopback(host):
        return Listen(host, port)
    if not insecure_http:
        raise GraphiumError(
            f"refusing to serve plain HTTP on {host}, which is not a loopback address: bearer "
            "tokens and secrets would cross the network in clear. Serve HTTPS with --tls-cert "
            "FILE --tls-key FILE, or pass --insecure-http to accept the risk"
        )
    return Listen(host, port, warning=INSECURE_HTTP_WARNING.format(host=host))


__all__ = ["INSECURE_HTTP_WARNING", "Listen", "check_certificate", "is_loopback", "plan_listen"]
