"""``ps``, ``logs`` and the live ``status`` as users run them, over a local engine and over SSH.

One stack per transport: a container that keeps talking (its secret in its first line) and one
that exits with code 3 right after the apply, which the stored state still calls deployed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest

from graphium.store.json_store import JsonTaskStore
from lab import LabInfo
from tests.integration.server_fixture import RUNNER, ServerProcess
from tests.support import (
    GRAPHIUM_RUN,
    free_port_on,
    remove_stack,
    stack_doc,
    stop_processes,
    unique_name,
    wait_for,
)
from tests.support import graphium_run as run
from tests.support import write_json as write

SECRET = "s3cr3t-ops-value"
DB_PASSWORD = "pw-by-value-9876"
TALK = [
    "sh",
    "-c",
    "echo start $API_TOKEN; echo url $DATABASE_URL; "
    "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done",
]


def _stack(
    name: str, host: str | None = None, port: int | None = None, *, url: bool = False
) -> dict[str, Any]:
    talker: dict[str, Any] = {
        "name": "talker",
        "image": "graphium-test/web:1",
        "environment": {"API_TOKEN": SECRET},
        "command": TALK,
    }
    if url:  # a secret inside a value whose key is not secret-looking: masked by value
        talker["environment"]["DATABASE_URL"] = "postgres://app:${OPS_DB_PASSWORD}@db/orders"
    if port is not None:
        talker["ports"] = [{"containerPort": 80, "hostPort": port}]
    crasher = {
        "name": "crasher",
        "image": "graphium-test/web:1",
        "command": ["sh", "-c", "sleep 1; exit 3"],
    }
    for part in (talker, crasher):
        if host is not None:
            part["locatedInHost"] = host
    return stack_doc(name, [talker, crasher])


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _check_day2(
    stack: str,
    host: str,
    base: list[str],
    env: dict[str, str],
    port: int | None = None,
    *,
    full: bool = False,
) -> None:
    """ps, status and logs of a deployed stack whose crasher has exited, on ``host`` (``full``:
    the human tables and option checks too, which do not depend on the transport)."""
    ps = run("ps", stack, "--json", *base, env=env)
    assert ps.returncode == 0, ps.stderr
    rows = {r["name"]: r for r in _lines(ps.stdout)}
    assert set(rows) == {"talker", "crasher"}
    talker, crasher = rows["talker"], rows["crasher"]
    assert talker["host"] == host and talker["state"] == "running" and talker["uptimeSeconds"] > 0
    assert talker["image"] == "graphium-test/web:1" and talker["restarts"] == 0
    assert crasher["state"] == "exited" and crasher["exitCode"] == 3 and crasher["uptimeSeconds"] is None
    if port is not None:
        assert any(p.endswith(f":{port}->80/tcp") for p in talker["ports"]), talker["ports"]

    if full:
        human = run("ps", stack, *base, env=env)
        assert f"{stack}-crasher" in human.stdout and "exited (3)" in human.stdout, human.stdout
        table = run("status", *base, env=env)
        assert "degraded" in table.stdout and "1/2 running" in table.stdout, table.stdout
        stored = run("status", stack, "--json", "--no-refresh", *base, env=env)
        assert "live" not in _lines(stored.stdout)[0]
        assert run("logs", stack, "talker", "--since", "2099-01-01T00:00:00Z", *base, env=env).stdout == ""
        second = run("logs", stack, "talker", *base, env=env).stdout.splitlines()[1]
        assert second == f"{stack}-talker@{host} | url postgres://app:(sensitive)@db/orders", second
        assert DB_PASSWORD not in run("logs", stack, *base, env=env).stdout
        missing = run("logs", stack, "ghost", *base, env=env)
        assert missing.returncode == 1 and "no container ghost" in missing.stderr

    status = run("status", stack, "--json", *base, env=env)
    live = _lines(status.stdout)[0]["live"]
    assert live["status"] == "degraded" and live["running"] == 1 and live["expected"] == 2, live
    assert any(f"{stack}-crasher on {host}: exited (code 3)" in p for p in live["problems"])

    logs = run("logs", stack, "talker", *base, env=env)
    assert logs.returncode == 0, logs.stderr
    first = logs.stdout.splitlines()[0]
    assert first == f"{stack}-talker@{host} | start (sensitive)", first
    assert SECRET not in logs.stdout + logs.stderr
    tail = run("logs", stack, "talker", "--tail", "2", *base, env=env).stdout.splitlines()
    assert len(tail) == 2 and all(line.startswith(f"{stack}-talker@{host} | tick ") for line in tail), tail


def _wait_exited(docker_url: str, name: str) -> None:
    client = docker.DockerClient(base_url=docker_url, version="auto")
    try:
        wait_for(lambda: client.containers.get(name).status == "exited", 20, f"{name} exits", 0.2)
    finally:
        client.close()


def _follow_then_interrupt(stack: str, host: str, base: list[str], env: dict[str, str]) -> None:
    """``logs -f`` keeps printing new lines until Ctrl-C, then exits at once."""
    proc = subprocess.Popen(
        [GRAPHIUM_RUN, "logs", stack, "talker", "-f", "--since", "1s", *base],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        seen = [proc.stdout.readline() for _ in range(3)]
        ticks = [int(line.rsplit(" ", 1)[1]) for line in seen]
        assert all(line.startswith(f"{stack}-talker@{host} | tick") for line in seen), seen
        assert ticks == sorted(ticks) and len(set(ticks)) == 3
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc.wait(10)
        assert time.monotonic() - started < 5
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.docker
def test_ps_status_and_logs_over_a_local_engine(docker_url: str, tmp_path: Path) -> None:
    stack = unique_name("ops")
    env = {**os.environ, "DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(tmp_path / "state.json")}
    env["OPS_DB_PASSWORD"] = DB_PASSWORD
    path = write(tmp_path / "stack.json", _stack(stack, url=True))
    try:
        applied = run("apply", str(path), env=env)
        assert applied.returncode == 0, applied.stderr
        _wait_exited(docker_url, f"{stack}-crasher")
        _check_day2(stack, "local", [], env, full=True)
        _follow_then_interrupt(stack, "local", [], env)
    finally:
        remove_stack(docker_url, stack)


@pytest.mark.docker
def test_ps_and_logs_through_the_server_and_an_agent(docker_url: str, tmp_path: Path) -> None:
    """The server relays ``ps`` and ``logs`` to h1's agent; h2 has none, and says so at once."""
    stack = unique_name("opsagent")
    server = ServerProcess(tmp_path, ["h1", "h2"], tls=False)
    both = server.inventory.read_text()
    server.inventory.write_text(json.dumps({"hosts": [{"@id": "h1", "connection": "agent"}]}))
    server.start(60)
    agent_env = {**os.environ, "DOCKER_HOST": docker_url, "GRAPHIUM_AGENT_TOKEN": server.agent_tokens["h1"]}
    agent = subprocess.Popen(
        [*RUNNER, "agent", "--host-id", "h1", "--server", server.url],
        env=agent_env,
        stdout=(tmp_path / "agent.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    env = {**os.environ, "GRAPHIUM_TOKEN": server.admin_token}
    base = ["--server", server.url]
    try:
        path = write(tmp_path / "stack.json", _stack(stack, "h1"))
        store = JsonTaskStore(server.state)
        wait_for(lambda: store.get_observation("h1"), 30, "h1's agent reports its host", 0.1)
        applied = run("apply", str(path), *base, env=env)
        assert applied.returncode == 0, applied.stdout + applied.stderr + server.log_tail()
        _wait_exited(docker_url, f"{stack}-crasher")
        # the plan as the server sees it (before h2 joins: a server plans only seeing every host)
        preview = run("plan", str(path), "--json", *base, env=env)
        assert preview.returncode == 0, preview.stderr
        planned = [line for line in _lines(preview.stdout) if line["type"] == "plan"]
        assert planned and planned[0]["stack"] == stack and SECRET not in preview.stdout
        server.inventory.write_text(both)  # h2 joins, without an agent (the server reads it per request)
        ps = run("ps", stack, "--json", *base, env=env)
        rows = {r.get("name"): r for r in _lines(ps.stdout)}
        assert rows["talker"]["state"] == "running" and rows["talker"]["host"] == "h1", ps.stdout
        assert rows["crasher"]["exitCode"] == 3
        every = run("ps", "--json", *base, env=env)
        assert every.returncode == 1  # h2 cannot be read
        (error,) = [r for r in _lines(every.stdout) if r["type"] == "host_error"]
        assert error["host"] == "h2" and "no live agent for h2" in error["error"], error
        with server.admin() as api:  # a host without an agent answers at once, not after a timeout
            started = time.monotonic()
            assert api.get("/hosts/status").status_code == 200
            assert time.monotonic() - started < 3

        status = _lines(run("status", stack, "--json", *base, env=env).stdout)[0]
        assert status["status"] == "running" and status["live"]["status"] == "degraded", status
        table = run("status", *base, env=env).stdout
        header = table.splitlines()[0].split()
        assert header == ["stack", "status", "live", "phase", "progress", "containers", "hosts", "updated"]
        assert "degraded" in table and "1/2 running" in table and "exited (code 3)" in table, table

        logs = run("logs", stack, "talker", "--tail", "2", *base, env=env)
        assert logs.returncode == 0, logs.stderr
        lines = logs.stdout.splitlines()
        assert len(lines) == 2 and all(line.startswith(f"{stack}-talker@h1 | tick ") for line in lines)
        full = run("logs", stack, "talker", *base, env=env).stdout
        assert full.startswith(f"{stack}-talker@h1 | start (sensitive)\n") and SECRET not in full
        _follow_then_interrupt(stack, "h1", base, env)
    finally:
        stop_processes(agent)
        server.stop()
        remove_stack(docker_url, stack)


@pytest.mark.lab
def test_ps_status_and_logs_over_ssh(lab: LabInfo, tmp_path: Path) -> None:
    stack = unique_name("opsssh")
    vm1 = lab.host("vm1")
    port = free_port_on(vm1.address)
    env = {**os.environ, "GRAPHIUM_STATE": str(tmp_path / "state.json")}
    path = write(tmp_path / "stack.json", _stack(stack, "vm1", port))
    base = ["-i", str(lab.inventory)]
    try:
        applied = run("apply", str(path), *base, env=env)
        assert applied.returncode == 0, applied.stderr
        _wait_exited(vm1.docker_url, f"{stack}-crasher")
        _check_day2(stack, "vm1", base, env, port)
        _follow_then_interrupt(stack, "vm1", base, env)
    finally:
        remove_stack(vm1.docker_url, stack)
