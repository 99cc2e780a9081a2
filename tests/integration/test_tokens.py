"""Tokens as operators need them: list and revoke with the real CLI against a running server, last
use recorded without a write per request, agent tokens from a file or the environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx

from graphium.control.server.auth import usage_path
from tests.integration.server_fixture import REPO, RUNNER, ServerProcess, server_process  # noqa: F401
from tests.support import graphium_run, stop_processes, wait_for


def token_list(server: ServerProcess) -> list[dict[str, object]]:
    done = graphium_run("token", "list", "--tokens", str(server.tokens), "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def token_id(server: ServerProcess, host: str | None) -> str:
    [found] = [t for t in token_list(server) if t["hostId"] == host]
    return str(found["id"])


def test_token_list_shows_everything_but_the_secret(server: ServerProcess) -> None:
    listed = token_list(server)
    assert {(t["role"], t["hostId"]) for t in listed} == {("admin", None), ("agent", "h1"), ("agent", "h2")}
    assert all(t["type"] == "token" and t["schema_version"] and t["id"] and t["created"] for t in listed)
    table = graphium_run("token", "list", "--tokens", str(server.tokens))
    assert table.returncode == 0, table.stderr
    assert "last used" in table.stdout and "h2" in table.stdout
    hashes = [entry["hash"] for entry in json.loads(server.tokens.read_text())["tokens"]]
    secrets = [server.admin_token, *server.agent_tokens.values(), *hashes]
    for output in (json.dumps(listed), table.stdout):
        assert not any(secret in output for secret in secrets)


def test_revoke_takes_effect_at_once_on_a_running_server(server: ServerProcess) -> None:
    with server.agent("h1") as agent, server.admin() as admin:
        assert agent.get("/agents/h1/tasks").status_code == 200
        revoked = graphium_run("token", "revoke", token_id(server, "h1"), "--tokens", str(server.tokens))
        assert revoked.returncode == 0, revoked.stderr
        assert "Revoked agent token" in revoked.stdout and server.agent_tokens["h1"] not in revoked.stdout
        assert agent.get("/agents/h1/tasks").status_code == 401  # the very next request, no restart
        assert admin.get("/tasks").status_code == 200
        with server.agent("h2") as other:
            assert other.get("/agents/h2/tasks").status_code == 200
    unknown = graphium_run("token", "revoke", "no-such-id", "--tokens", str(server.tokens))
    assert unknown.returncode == 1 and "no token with id 'no-such-id'" in unknown.stderr
    assert [t["hostId"] for t in token_list(server)].count("h1") == 0


def test_last_use_is_kept_in_memory_and_flushed(server: ServerProcess) -> None:
    """Requests do not write the usage file (it is flushed every 30 s, and at shutdown); the
    tokens file, which the CLI owns, is never written by the server."""
    tokens_before = server.tokens.read_bytes()
    with server.admin() as admin, server.agent("h1") as agent:
        for _ in range(20):
            assert admin.get("/tasks/stats").status_code == 200
            assert agent.get("/agents/h1/tasks").status_code == 200
    assert not usage_path(server.tokens).exists(), "a request wrote the usage file"
    assert all(t["lastUsed"] is None for t in token_list(server))
    server.stop()
    used = {t["hostId"]: t["lastUsed"] for t in token_list(server)}
    assert used[None] and used["h1"] and used["h2"] is None, used
    assert server.tokens.read_bytes() == tokens_before
    assert oct(usage_path(server.tokens).stat().st_mode & 0o777) == "0o600"


def start_agent(
    server: ServerProcess, docker_url: str, log: Path, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHIUM_")}
    environ.update(DOCKER_HOST=docker_url, PYTHONPATH=str(REPO), **env)
    cmd = [*RUNNER, "agent", "--host-id", "h1", "--server", server.url, *server.ca_args, *args]
    with log.open("ab") as out:
        return subprocess.Popen(cmd, env=environ, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def run_one_task(server: ServerProcess, admin: httpx.Client, name: str) -> None:
    """A delete of a container that does not exist: completes on any engine, proving the agent's
    token let it claim and report."""
    body = {"taskType": "delete", "hostId": "h1", "payload": {"dockerName": name}, "id": name}
    assert admin.post("/tasks", json=body).status_code == 201

    def status() -> bool:
        return admin.get(f"/tasks/{name}").json()["status"] == "completed"

    wait_for(status, 30, f"{name} was not completed by the agent")


def test_agent_token_from_a_file_or_the_environment(
    server: ServerProcess, docker_url: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "agent.token"
    token_file.write_text(server.agent_tokens["h1"] + "\n")
    token_file.chmod(0o600)
    logs = {how: tmp_path / f"agent-{how}.log" for how in ("file", "env", "argv")}
    with server.admin() as admin:
        for how, args, env in (
            ("file", ["--token-file", str(token_file)], {}),
            ("env", [], {"GRAPHIUM_AGENT_TOKEN": server.agent_tokens["h1"]}),
        ):
            agent = start_agent(server, docker_url, logs[how], *args, **env)
            try:
                run_one_task(server, admin, f"gone-{how}")
            finally:
                stop_processes(agent)
        agent = start_agent(server, docker_url, logs["argv"], "--token", server.agent_tokens["h1"])
        try:
            wait_for(
                lambda: "Warning: --token on the command line" in logs["argv"].read_text(), 20, "no warning"
            )
            run_one_task(server, admin, "gone-argv")  # still works: a warning, not a refusal
        finally:
            stop_processes(agent)
    for log in logs.values():
        assert server.agent_tokens["h1"] not in log.read_text()
    assert "--token on the command line" not in logs["env"].read_text()
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    empty.chmod(0o644)
    refused = graphium_run("agent", "--host-id", "h1", "--server", server.url, "--token-file", str(empty))
    assert refused.returncode != 0 and "holds no token" in refused.stderr
    assert "readable by other users" in refused.stderr
    missing = graphium_run(
        "agent", "--host-id", "h1", "--server", server.url, env={"GRAPHIUM_AGENT_TOKEN": ""}
    )
    assert missing.returncode != 0 and "--token-file FILE or env GRAPHIUM_AGENT_TOKEN" in missing.stderr
