"""``graphium-run`` with its state in PostgreSQL (``--state postgresql://...``, here through
``GRAPHIUM_STATE`` so that the URL's password is not on a command line): plan, apply, status,
history and destroy on the lab's local engine, the database being a fresh one of the lab's
throwaway cluster. The URL's password never shows in any output."""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from pathlib import Path

import docker.errors

from graphium.store.open import open_store
from tests.support import graphium_run, remove_stack, stack_containers, unique_name, web_stack


def test_plan_apply_status_destroy_with_the_state_in_postgresql(
    docker_url: str, fresh_database: str, tmp_path: Path
) -> None:
    name = unique_name("pgcli-")
    stack = web_stack(tmp_path / "stack.json", name, "one", 1)
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": fresh_database}
    password = urllib.parse.urlsplit(fresh_database).password
    assert password
    outputs: list[str] = []

    def run(*args: str, code: int = 0) -> str:
        done = graphium_run(*args, env=env)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == code, f"{args}: {done.stdout}{done.stderr}"
        return done.stdout

    try:
        run("plan", str(stack), "--detailed-exitcode", code=2)
        run("apply", str(stack), "-y")
        assert len(stack_containers(docker_url, name)) == 1
        statuses = [json.loads(line) for line in run("status", "--json").splitlines()]
        assert any(s.get("name") == name and s.get("status") == "running" for s in statuses), statuses
        versions = [json.loads(line) for line in run("history", name, "--json").splitlines()]
        assert [v["type"] for v in versions] == ["version"], versions
        with open_store(fresh_database) as store:  # the records are in the database
            record = store.get_stack(name)
            assert record is not None and record.status.value == "running"
        run("plan", str(stack), "--detailed-exitcode")  # nothing to change: exit 0
        # the database's state copied into a JSON file reads the same there
        copy = tmp_path / "copy.json"
        said = run("store", "copy", fresh_database, str(copy))
        assert "Copied 1 stack(s), 1 version(s)" in said and "postgresql://postgres:***@" in said
        copied = [json.loads(line) for line in run("status", "--state", str(copy), "--json").splitlines()]
        assert [(s["name"], s["status"]) for s in copied if s.get("name") == name] == [(name, "running")]
        assert run("history", name, "--state", str(copy), "--json").count('"type":"version"') == 1
        run("store", "copy", fresh_database, str(copy), code=1)  # never into a store in use
        assert "the target store is not empty" in outputs[-1]
        run("destroy", str(stack), "-y")
        assert not stack_containers(docker_url, name)
        missing = graphium_run("status", "no-such-stack", env=env)
        outputs.append(missing.stdout + missing.stderr)
        assert missing.returncode == 1 and "postgresql://postgres:***@" in missing.stderr
    finally:
        for text in outputs:
            assert password not in text, "the database password was printed"
        with contextlib.suppress(docker.errors.DockerException):
            remove_stack(docker_url, name)
