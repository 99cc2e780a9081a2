"""Versions through the server: `apply --server` posts the stack as written with its variables,
so the server records versions (`history --server`, `rollback --server` work for pull-mode
stacks) and knows the secret values, masked wherever the server shows them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from graphium.store.json_store import JsonTaskStore
from tests.integration.server_fixture import ServerProcess
from tests.integration.test_cli_pull import answers, pull, run  # noqa: F401  (pull: the fixture)
from tests.support import free_port, stack_containers

pytestmark = pytest.mark.docker
PASSWORD = "pw-" + uuid.uuid4().hex[:12]


def stack_file(tmp_path: Path, name: str, port: int, msg: str) -> Path:
    doc: dict[str, Any] = {"@context": "https://schema.org", "@graph": [{
        "@type": "datacenter:Stack", "name": name, "hasPart": [{
            "name": "web", "image": "graphium-test/web:1",
            "command": ["sh", "-c", 'echo "$MSG" > /www/index.html && exec httpd -f -p 80 -h /www'],
            "environment": {"MSG": msg, "DATABASE_URL": "postgres://app:${DB_PASSWORD}@db/orders"},
            "ports": [{"containerPort": 80, "hostPort": port}]}]}]}  # fmt: skip
    path = tmp_path / f"{name}-{msg}.json"
    path.write_text(json.dumps(doc))
    return path


def container_env(docker_url: str, name: str) -> dict[str, str]:
    (container,) = [c for c in stack_containers(docker_url, name) if c.status == "running"]
    return dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])


def test_history_and_rollback_through_the_server_with_a_secret_masked_by_value(
    pull: ServerProcess,  # noqa: F811
    tmp_path: Path,
    docker_url: str,
) -> None:
    name, port = f"v{uuid.uuid4().hex[:8]}", free_port()
    server = ["--server", pull.url, "--token", pull.admin_token, *pull.ca_args]
    env = {"DB_PASSWORD": PASSWORD}
    try:
        proc = run("apply", str(stack_file(tmp_path, name, port, "one")), *server)
        assert "DB_PASSWORD is not set" in proc.stdout + proc.stderr and proc.returncode == 1
        assert JsonTaskStore(pull.state).get_stack(name) is None  # nothing was sent
        for msg in ("one", "two"):
            proc = run("apply", str(stack_file(tmp_path, name, port, msg)), *server, **env)
            out = proc.stdout + proc.stderr
            assert proc.returncode == 0 and f"Stack {name} is running." in proc.stdout, out
            assert answers(port) == msg
        assert container_env(docker_url, name)["DATABASE_URL"] == f"postgres://app:{PASSWORD}@db/orders"

        proc = run("history", name, *server, "--json")
        versions = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [v["number"] for v in versions] == [1, 2] and versions[1]["current"], proc.stdout + proc.stderr
        assert "variablesNeeded" not in versions[0]  # the same lines as a local history
        proc = run("history", name, *server)
        assert proc.returncode == 0 and "VERSION" in proc.stdout and "* 2" in proc.stdout.replace("  ", " ")

        proc = run("rollback", name, *server)  # the version does not record DB_PASSWORD
        assert proc.returncode == 1 and "DB_PASSWORD is not set" in proc.stdout + proc.stderr
        proc = run("rollback", name, *server, **env)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "to version 1" in out and f"Stack {name} is running." in out, out
        assert answers(port) == "one"
        got = container_env(docker_url, name)
        assert got["MSG"] == "one" and got["DATABASE_URL"] == f"postgres://app:{PASSWORD}@db/orders"
        proc = run("history", name, *server, "--json")
        assert [json.loads(line)["number"] for line in proc.stdout.splitlines()] == [1, 2, 3]

        # the server knew the secret: masked by value in its views and events
        with pull.admin() as api:
            doc = json.loads(stack_file(tmp_path, name, port, "three").read_text())
            missing = api.post("/stacks", json={"document": doc, "variables": {"OTHER": PASSWORD}})
            assert missing.status_code == 400 and PASSWORD not in missing.text, missing.text
            assert "DB_PASSWORD" in missing.text and missing.json()["problems"][0]["path"].startswith("$")
            views = [api.get(f"/stacks/{name}").text, api.get("/tasks", params={"stackId": name}).text]
        assert "DATABASE_URL" in views[1] and "postgres://app:" in views[1]
        views += [run("status", name, *server).stdout, run("status", name, *server, "--json").stdout]
        views += [json.dumps(e.model_dump(mode="json")) for e in JsonTaskStore(pull.state).list_events()]
        assert all(PASSWORD not in view for view in views)
    finally:
        run("destroy", str(stack_file(tmp_path, name, port, "one")), *server, **env)
    assert stack_containers(docker_url, name) == []
