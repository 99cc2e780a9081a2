"""A secret interpolated into an innocent key is masked by value everywhere graphium speaks.

``DATABASE_URL: postgres://app:${DB_PASSWORD}@db/orders`` on a real engine: the container gets
the password; ``plan``, ``plan --json``, the ``plan -o`` file, ``apply`` (human and ``--json``,
events included), a failed task's error quoting the container's logs, ``status`` and the stored
errors never show it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import graphium
from graphium.stack.models import Inventory
from graphium.store.json_store import JsonTaskStore
from tests.support import graphium_run as run
from tests.support import remove_stack, stack_containers, stack_doc, unique_name
from tests.support import write_json as write

PASSWORD = "s3cret-orders-7781"
URL = "postgres://app:${DB_PASSWORD}@db/orders"


def _stack(name: str, *, crash: bool = False) -> dict[str, Any]:
    app: dict[str, Any] = {
        "name": "app",
        "image": "graphium-test/web:1",
        "environment": {"DATABASE_URL": URL, "MODE": "orders"},
    }
    if crash:  # prints its environment and dies: the error quotes its logs
        app["command"] = ["sh", "-c", "echo connecting to $DATABASE_URL; exit 3"]
    return stack_doc(name, [app])


def _no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text, text


def test_plan_saved_plan_apply_and_a_failure_never_show_the_secret(docker_url: str, tmp_path: Path) -> None:
    name = unique_name("sec")
    stack = write(tmp_path / "stack.json", _stack(name))
    env = {"DOCKER_HOST": docker_url, "GRAPHIUM_STATE": str(tmp_path / "state.json"), "DB_PASSWORD": PASSWORD}
    try:
        saved = tmp_path / "plan.json"
        proc = run("plan", str(stack), "-o", str(saved), env=env)
        assert proc.returncode == 0, proc.stderr
        assert "DATABASE_URL=postgres://app:(sensitive)@db/orders" in proc.stdout
        _no_secret(proc.stdout, proc.stderr, saved.read_text())
        assert "(sensitive:DB_PASSWORD)" in saved.read_text()

        proc = run("apply", str(saved), env={**env, "DB_PASSWORD": "another-password"})
        assert proc.returncode == 3, proc.stderr  # stale: the container would not be the one shown
        assert "another value than when the plan was made" in proc.stderr
        assert stack_containers(docker_url, name) == []

        proc = run("apply", str(saved), "--json", env=env)  # the saved plan, unsealed from the env
        assert proc.returncode == 0, proc.stderr
        assert "stack_running" in proc.stdout
        _no_secret(proc.stdout, proc.stderr)
        [container] = stack_containers(docker_url, name)
        assert f"DATABASE_URL=postgres://app:{PASSWORD}@db/orders" in container.attrs["Config"]["Env"]

        write(stack, _stack(name, crash=True))
        proc = run("apply", str(stack), env=env)
        assert proc.returncode == 1
        assert "connecting to postgres://app:(sensitive)@db/orders" in proc.stdout + proc.stderr
        _no_secret(proc.stdout, proc.stderr)

        with JsonTaskStore(tmp_path / "state.json") as store:  # what status, tasks and events show
            errors = [t.error or "" for t in store.list_tasks()]
            events = json.dumps([e.model_dump(mode="json") for e in store.list_events()])
            record = store.get_stack(name)
        assert record is not None and any("connecting to" in e for e in errors)
        _no_secret(*errors, events, record.error or "")
    finally:
        remove_stack(docker_url, name)


def test_python_api_takes_a_dict_applies_a_plan_on_its_own_inventory_and_masks_repr(
    docker_url: str, tmp_path: Path
) -> None:
    name = unique_name("sec")
    inventory = Inventory.model_validate({"hosts": [{"@id": "local", "dockerHost": docker_url}]})
    state = tmp_path / "state.json"
    environ = {"DB_PASSWORD": PASSWORD}
    try:
        plan = graphium.plan(_stack(name), inventory=inventory, state=state, environ=environ)
        result = graphium.apply(plan, state=state)  # no inventory: the plan's own (not DOCKER_HOST's)
        assert result.ok, result.failed
        [container] = stack_containers(docker_url, name)
        assert f"DATABASE_URL=postgres://app:{PASSWORD}@db/orders" in container.attrs["Config"]["Env"]
        _no_secret(repr(plan), str(plan), repr(result), str(result), *map(repr, result.tasks.values()))
        assert "postgres://app:(sensitive)@db/orders" in repr(plan)
        with pytest.raises(graphium.StackError, match="<dict>"):
            graphium.plan({"@graph": [{"@type": "Stack", "name": name}]}, inventory=inventory, state=state)
    finally:
        remove_stack(docker_url, name)
