"""The test session's CA and server certificate (see lab/tls.py), made once per process.

``session_pki()`` returns the same paths to every caller of a pytest run; the directory goes when
the process ends. ``client_context()`` is what a test client verifies the server with, and
``chrome_trust_flags()`` what a test browser does.
"""

from __future__ import annotations

import atexit
import base64
import functools
import hashlib
import shutil
import ssl
import tempfile
from pathlib import Path

from lab.tls import Pki, make_pki


@functools.cache
def session_pki() -> Pki:
    directory = Path(tempfile.mkdtemp(prefix="graphium-tls-"))
    atexit.register(shutil.rmtree, directory, True)
    return make_pki(directory)


def client_context() -> ssl.SSLContext:
    """Verifies servers against the session CA only (not the system store)."""
    return ssl.create_default_context(cafile=str(session_pki().ca_cert))


def chrome_trust_flags(user_data_dir: Path) -> list[str]:
    """Chromium flags that make a test browser accept the session's server certificate, and only
    it: its public key pinned by ``--ignore-certificate-errors-spki-list`` (which Chromium honours
    only with a ``--user-data-dir`` of its own)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(session_pki().server_cert.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return [f"--user-data-dir={user_data_dir}", f"--ignore-certificate-errors-spki-list={pin}"]
