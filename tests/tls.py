"""The test session's CA and server certificate (see lab/tls.py), made once per process.

``session_pki()`` returns the same paths to every caller of a pytest run; the directory goes when
the process ends. ``client_context()`` is what a test client verifies the server with.
"""

from __future__ import annotations

import atexit
import functools
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
