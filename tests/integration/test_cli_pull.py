"""Pull mode through graphium-run: a real server process, a real `graphium-run agent` process on the
lab's engine, and the CLI both talking to the server (--server) and writing into its store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.server_fixture import RUNNER, ServerProcess
from tests.support import free_port, stack_containers

pytestmark = pytest.mark.docker
RUN = str(Path(sys.executable).with_name("graphium-run"))


def answers(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return str(resp.read().decode().strip())


@pytest.fixture
def pull(tmp_path: Path, docker_url: str) -> Iterator[ServerProcess]:
    """A server with one agent host `h1` and its agent, a `graphium-run agent` process."""
    server = ServerProcess(tmp_path, ["h1"])
    agent: subprocess.Popen[bytes] | None = None
    try:
        server.start()
        agent = subprocess.Popen(
            [*RUNNER, "agent", "--host-id", "h1", "--server", server.url, *server.ca_args,
             "--docker-host", docker_url],
            env={**os.environ, "GRAPHIUM_AGENT_TOKEN": server.agent_tokens["h1"]},
            stdout=(tmp_path / "agent.log").open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        with server.admin() as api:  # the agent has reported its host once it is ready
            while not api.get("/agents/h1/tasks").is_success or not _reported(server):
                assert time.monotonic() < deadline, (tmp_path / "agent.log").read_text()
                time.sleep(0.1)
        yield server
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(15)
        server.stop()


def _reported(server: ServerProcess) -> bool:
    from graphium.store.json_store import JsonTaskStore

    return JsonTaskStore(server.state).get_observation("h1") is not None


def stack_file(tmp_path: Path, name: str, port: int, msg: str) -> Path:
    doc: dict[str, Any] = {"@context": "https://schema.org", "@graph": [{
        "@type": "datacenter:Stack", "name": name, "hasPart": [{
            "name": "web", "image": "graphium-test/web:1",
            "command": ["sh", "-c", 'echo "$MSG" > /www/index.html && exec httpd -f -p 80 -h /www'],
            "environment": {"MSG": msg, "API_TOKEN": "${API_TOKEN}"},
            "ports": [{"containerPort": 80, "hostPort": port}]}]}]}  # fmt: skip
    path = tmp_path / f"{name}-{msg}.json"
    path.write_text(json.dumps(doc))
    return path


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RUN, *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "API_TOKEN": "tok-123456", **env})  # fmt: skip


def test_apply_status_destroy_through_the_server(
    pull: ServerProcess, tmp_path: Path, docker_url: str
) -> None:
    name, port = f"p{uuid.uuid4().hex[:8]}", free_port()
    server = ["--server", pull.url, "--token", pull.admin_token, *pull.ca_args]
    proc = run("apply", str(stack_file(tmp_path, name, port, "one")), *server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Stack {name}: deploying" in proc.stdout and f"Stack {name} is running." in proc.stdout
    assert answers(port) == "one"
    assert "tok-123456" not in proc.stdout + proc.stderr

    proc = run("apply", str(stack_file(tmp_path, name, port, "two")), *server, "--no-wait")
    assert proc.returncode == 0 and "deploying" in proc.stdout, proc.stderr
    env_ca = {"GRAPHIUM_CA_CERT": str(pull.ca_cert)}  # the CA from the environment, too
    proc = run("status", name, "--follow", "--server", pull.url, "--token", pull.admin_token, **env_ca)
    assert proc.returncode == 0 and f"Stack {name} is running." in proc.stdout, proc.stdout + proc.stderr
    assert answers(port) == "two"

    proc = run("status", name, "--json", *server)
    assert json.loads(proc.stdout)["placements"]["web"]["hostId"] == "h1"

    proc = run("destroy", str(stack_file(tmp_path, name, port, "two")), *server)
    assert proc.returncode == 0 and f"Stack {name} is deleted." in proc.stdout, proc.stdout + proc.stderr
    assert stack_containers(docker_url, name) == []


def test_store_mode_runner_waits_for_agents_and_no_wait_returns_at_once(
    pull: ServerProcess, tmp_path: Path, docker_url: str
) -> None:
    name, port = f"s{uuid.uuid4().hex[:8]}", free_port()
    store = ["-i", str(pull.inventory), "--state", str(pull.state)]
    proc = run("apply", str(stack_file(tmp_path, name, port, "one")), *store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Stack {name} applied" in proc.stdout and answers(port) == "one"

    started = time.monotonic()
    proc = run("apply", str(stack_file(tmp_path, name, port, "two")), *store, "--no-wait")
    assert proc.returncode == 0 and "Enqueued 1 task(s)" in proc.stdout, proc.stdout + proc.stderr
    assert time.monotonic() - started < 10
    proc = run("status", name, "--follow", "--state", str(pull.state))
    assert proc.returncode == 0 and "running" in proc.stdout, proc.stdout + proc.stderr
    assert answers(port) == "two"

    proc = run("destroy", str(stack_file(tmp_path, name, port, "two")), *store)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stack_containers(docker_url, name) == []
