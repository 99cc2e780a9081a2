"""The stack's own volumes in plans, from data: tests/data/volumes/<case>/.

A case holds ``stack.json`` (a StackSpec), ``inventory.json``, ``observed.json`` (host id ->
ObservedHost: the volumes, containers and networks found) and ``expected.json``: ``mode``
(``apply``, ``destroy`` or ``destroy-volumes``), the exact task set (``"<type> <name>@<host>"``),
edges that must (``edges``) and must not (``no_edges``) exist, optional exact ``payloads`` and the
plan's ``notes``, exactly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from graphium.cli.output import render_plan
from graphium.errors import StackError
from graphium.plan.hashing import canonical, spec_hashes
from graphium.plan.model import ObservedHost, Plan
from graphium.plan.planner import plan_apply, plan_destroy
from graphium.records.task import Task
from graphium.stack.models import ContainerSpec, Inventory, StackSpec

CASES_DIR = Path(__file__).resolve().parent.parent / "data" / "volumes"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())
EXPECTED_KEYS = {"mode", "tasks", "edges", "no_edges", "payloads", "notes"}


def _read(case: Path, name: str) -> Any:
    return json.loads((case / name).read_text())


def task_name(task: Task) -> str:
    payload = task.payload
    container = payload.get("container")
    if isinstance(container, dict):
        name = container["name"]
    elif isinstance(payload.get("network"), dict):
        name = payload["network"]["name"]
    elif task.task_type.value == "delete":
        name = payload["dockerName"].removeprefix(f"{task.stack_id}-")
    else:
        name = payload["name"]
    return f"{task.task_type.value} {name}@{task.host_id}"


def plan_case(case: Path) -> Plan:
    stack = StackSpec.model_validate(_read(case, "stack.json"))
    inventory = Inventory.model_validate(_read(case, "inventory.json"))
    observed = {h: ObservedHost.model_validate(o) for h, o in _read(case, "observed.json").items()}
    mode = _read(case, "expected.json")["mode"]
    if mode == "apply":
        return plan_apply(stack, inventory, observed)
    return plan_destroy(stack.name, observed, volumes=mode == "destroy-volumes")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_volume_plan(case: Path) -> None:
    expected = _read(case, "expected.json")
    assert set(expected) <= EXPECTED_KEYS, f"unknown keys {sorted(set(expected) - EXPECTED_KEYS)}"
    plan = plan_case(case)
    names = {t.id: task_name(t) for t in plan.tasks}
    assert sorted(names.values()) == sorted(expected["tasks"])
    edges = {(names[t.id], names[d]) for t in plan.tasks for d in t.depends_on}
    for edge in expected.get("edges", []):
        assert tuple(edge) in edges, f"missing edge {edge}"
    for edge in expected.get("no_edges", []):
        assert tuple(edge) not in edges, f"unwanted edge {edge}"
    by_name = {names[t.id]: t for t in plan.tasks}
    for name, payload in expected.get("payloads", {}).items():
        assert by_name[name].payload == payload
    assert plan.notes == expected["notes"]


def test_volume_tasks_come_before_their_containers_and_after_deletions() -> None:
    for case in CASES:
        plan = plan_case(case)
        position = {t.id: i for i, t in enumerate(plan.tasks)}
        for task in plan.tasks:
            assert all(position[d] < position[task.id] for d in task.depends_on), case.name


def test_a_volume_only_destroy_is_shown_as_a_change() -> None:
    plan = plan_case(CASES_DIR / "destroy-volumes-only-volumes-left")
    console = Console(record=True, width=200)
    render_plan(plan, console)
    text = console.export_text()
    assert "No changes" not in text
    assert "remove volume shop-data from vm1" in text
    assert plan.has_changes


def test_kept_volumes_are_noted_under_the_plan() -> None:
    plan = plan_case(CASES_DIR / "destroy-keeps-volumes")
    console = Console(record=True, width=200)
    render_plan(plan, console)
    assert "Note: kept volume shop-data on vm1" in console.export_text()


def test_a_named_volume_is_hashed_as_the_stacks_own() -> None:
    """Containers deployed when named volumes were shared hash differently, so they are replaced
    onto the stack's own volume; external: true keeps the shared volume (and another hash)."""
    owned = ContainerSpec.model_validate(
        {"name": "db", "image": "pg", "mounts": [{"source": "data", "target": "/d"}]}
    )
    external = ContainerSpec.model_validate(
        {"name": "db", "image": "pg", "mounts": [{"source": "data", "target": "/d", "external": True}]}
    )
    shared = hashlib.sha256(canonical([{"source": "data", "target": "/d"}])).hexdigest()[:12]
    owned_hash = spec_hashes(owned, "shop-net")[1]["mounts"]
    assert owned_hash != shared
    assert spec_hashes(external, "shop-net")[1]["mounts"] not in (shared, owned_hash)


def test_mounts_of_one_volume_must_agree() -> None:
    data = {
        "name": "shop",
        "containers": [
            {"name": "a", "image": "x", "mounts": [{"source": "data", "target": "/d"}]},
            {"name": "b", "image": "x", "mounts": [{"source": "data", "target": "/d", "external": True}]},
        ],
    }
    with pytest.raises(ValueError, match="volume 'data' is mounted with different"):
        StackSpec.model_validate(data)


def test_external_applies_only_to_named_volumes(tmp_path: Path) -> None:
    from graphium.stack.loader import load_stack

    path = tmp_path / "stack.json"
    container = {"name": "a", "image": "x", "mounts": [{"type": "tmpfs", "target": "/t", "external": True}]}
    path.write_text(
        json.dumps(
            {
                "@context": "https://schema.org",
                "name": "shop",
                "@type": "SoftwareApplication",
                "hasPart": [container],
            }
        )
    )
    with pytest.raises(StackError, match="'external' applies only to named volume mounts"):
        load_stack(path)
