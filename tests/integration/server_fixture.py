"""A real ``graphium-run serve`` process for tests, reusable by any test module.

Usage::

    from tests.integration.server_fixture import ServerProcess, server_process  # noqa: F401

    # (importing server_process registers the fixture named ``server``)

    def test_something(server: ServerProcess) -> None:
        with server.admin() as api:                # httpx.Client on {url}/api/v1, admin token
            api.post("/tasks", json={...})
        with server.agent("vm1") as api:           # same, with vm1's agent token
            api.post("/agents/vm1/claim", params={"wait": 5}, json={"agentId": "a1"})

``ServerProcess(workdir, hosts, bind=..., port=...)`` writes an inventory of agent hosts, an admin
token and one agent token per host, then ``start()``
launches the server on a free port and returns once it answers; ``stop()`` sends SIGTERM (or the
given signal) to that one process; ``start()`` again restarts it on the same port, state and
tokens. ``bind`` may be a lab bridge address so agents in network namespaces can reach it.

The server speaks HTTPS with the session's test certificate (tests/tls.py) unless ``tls=False``:
``url`` is then ``https://...``, the clients it hands out verify against the test CA, and agents
and the CLI get ``ca_cert`` (``--ca-cert``). ``verify`` is what other httpx clients pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graphium.control.server.auth import create_token
from tests.support import free_port
from tests.tls import client_context, session_pki

REPO = Path(__file__).resolve().parents[2]
_BIN = Path(sys.executable).parent / "graphium-run"
RUNNER = [str(_BIN)] if _BIN.exists() else [sys.executable, "-c", "from graphium.cli import main; main()"]
DEFAULT_HOSTS = ["h1", "h2"]


class ServerProcess:
    """``graphium-run serve`` as a real process, restartable on the same port, state and tokens."""

    def __init__(
        self,
        workdir: Path,
        hosts: list[str],
        *,
        bind: str = "127.0.0.1",
        port: int | None = None,
        tls: bool = True,
        insecure_http: bool = False,
        runner: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.env = env  # more environment for the server process (GRAPHIUM_STORE, ...)
        self.runner = runner or RUNNER  # another installation's graphium-run, e.g. a plain install
        self.bind = bind
        self.tls = tls
        self.insecure_http = insecure_http
        pki = session_pki()
        self.ca_cert = pki.ca_cert
        self.tls_cert, self.tls_key = pki.server_cert, pki.server_key
        self.port = port or free_port(bind)
        self.state = workdir / "state.json"
        self.tokens = workdir / "tokens.json"
        self.inventory = workdir / "inventory.json"
        self.log_path = workdir / "server.log"
        self.inventory.write_text(json.dumps({"hosts": [{"@id": h, "connection": "agent"} for h in hosts]}))
        self.admin_token = self.create_token("--admin")
        self.agent_tokens = {h: self.create_token("--agent", h) for h in hosts}
        self.proc: subprocess.Popen[bytes] | None = None

    def create_token(self, *args: str) -> str:
        """Like ``graphium-run token create ARGS`` (``--admin`` or ``--agent HOST``), in-process
        because a CLI start per token made every fixture seconds slower."""
        if args == ("--admin",):
            return create_token(self.tokens, "admin", None)
        assert len(args) == 2 and args[0] == "--agent", args
        return create_token(self.tokens, "agent", args[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.bind}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The event stream's WebSocket URL (wss:// under TLS)."""
        return f"{'wss' if self.tls else 'ws'}://{self.bind}:{self.port}/api/v1/events/ws"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """For httpx's ``verify=``: the test CA under TLS."""
        return client_context() if self.tls else True

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """For raw sockets and WebSocket clients: the test CA under TLS, else None."""
        return client_context() if self.tls else None

    @property
    def ca_args(self) -> list[str]:
        """``--ca-cert FILE`` for agent and CLI command lines (empty over plain HTTP)."""
        return ["--ca-cert", str(self.ca_cert)] if self.tls else []

    def connect(self) -> socket.socket:
        """A raw connection to the server (TLS-wrapped under TLS), for tests below HTTP."""
        raw = socket.create_connection((self.bind, self.port))
        context = self.ssl_context
        return context.wrap_socket(raw, server_hostname=self.bind) if context else raw

    def command(self) -> list[str]:
        tls = ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)] if self.tls else []
        insecure = ["--insecure-http"] if self.insecure_http else []
        return [*self.runner, "serve", "--host", self.bind, "--port", str(self.port),
                "--state", str(self.state), "--tokens", str(self.tokens), "-i", str(self.inventory),
                *tls, *insecure]  # fmt: skip

    def start(self, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(
            base_url=self.url, headers=self.admin_headers, timeout=2, verify=self.verify
        ) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited ({self.proc.returncode}): {self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/api/v1/tasks/stats").status_code == 200:
                        return
                time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout}s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def agent_headers(self, host: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agent_tokens[host]}"}

    def client(self, headers: dict[str, str] | None = None, timeout: float = 10) -> httpx.Client:
        """An httpx client of ``{url}/api/v1`` verifying the server like an agent would."""
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers=headers or {}, timeout=timeout, verify=self.verify
        )

    def admin(self, timeout: float = 10) -> httpx.Client:
        return self.client(self.admin_headers, timeout)

    def agent(self, host: str, timeout: float = 40) -> httpx.Client:
        return self.client(self.agent_headers(host), timeout)

    def anonymous(self) -> httpx.Client:
        return self.client()


@pytest.fixture(name="server")
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server on 127.0.0.1 with agent hosts h1 and h2 (tokens in ``agent_tokens``)."""
    proc = ServerProcess(tmp_path, DEFAULT_HOSTS)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
