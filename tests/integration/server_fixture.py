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
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graphium.control.server.auth import create_token
from tests.support import free_port

REPO = Path(__file__).resolve().parents[2]
_BIN = Path(sys.executable).parent / "graphium-run"
RUNNER = [str(_BIN)] if _BIN.exists() else [sys.executable, "-c", "from graphium.cli import main; main()"]
DEFAULT_HOSTS = ["h1", "h2"]


class ServerProcess:
    """``graphium-run serve`` as a real process, restartable on the same port, state and tokens."""

    def __init__(
        self, workdir: Path, hosts: list[str], *, bind: str = "127.0.0.1", port: int | None = None
    ) -> None:
        self.workdir = workdir
        self.bind = bind
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
        return f"http://{self.bind}:{self.port}"

    def command(self) -> list[str]:
        return [*RUNNER, "serve", "--host", self.bind, "--port", str(self.port), "--state", str(self.state),
                "--tokens", str(self.tokens), "-i", str(self.inventory)]  # fmt: skip

    def start(self, timeout: float = 20.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        log.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, headers=self.admin_headers, timeout=2) as client:
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

    def admin(self, timeout: float = 10) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=self.admin_headers, timeout=timeout)

    def agent(self, host: str, timeout: float = 40) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=self.agent_headers(host), timeout=timeout)

    def anonymous(self) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=10)


@pytest.fixture(name="server")
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server on 127.0.0.1 with agent hosts h1 and h2 (tokens in ``agent_tokens``)."""
    proc = ServerProcess(tmp_path, DEFAULT_HOSTS)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
