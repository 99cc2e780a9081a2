"""Planner tests: data-driven cases under tests/data/plans/<case>/ plus a few properties.

A case directory holds ``stack.json`` (the desired StackSpec, canonical form), ``inventory.json``,
optionally ``before.json`` (a StackSpec already deployed: it is placed, on the hosts of
``before-inventory.json`` if given, and turned into observed containers exactly as an apply would
leave them), ``observed.json`` (changes made to that
observation: out-of-band live edits, extra containers, host errors, missing networks),
``stored.json`` (``true`` to derive the stored record from ``before``, or a StackRecord dict) and
``expected.json``: every action (kind, reason code, human reasons, field changes), the exact task
set, required and forbidden edges, or the error. Tasks are named ``"<type> <name>@<host>"`` so
that expectations do not depend on ids. Unknown keys in ``expected.json`` fail the case: a
misspelled expectation must not pass silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from graphium.errors import GraphiumError, PlanError, StalePlanError
from graphium.plan.model import (
    ActionKind,
    ActionReason,
    DesiredContainer,
    LiveConfig,
    ObservedContainer,
    ObservedHost,
    Plan,
)
from graphium.plan.planner import check_fresh, expand, fingerprint, plan_apply, plan_destroy, spec_hashes
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import TaskType
from graphium.stack.models import Inventory, StackSpec

CASES = Path(__file__).resolve().parent.parent / "data" / "plans"


def _read(case: Path, name: str) -> Any:
    path = case / name
    return json.loads(path.read_text()) if path.exists() else None


def live_of(d: DesiredContainer) -> LiveConfig:
    """The live config an engine would report for a container deployed from ``d``."""
    spec = d.spec
    return LiveConfig(
        state="running",
        image=spec.image,
        env=[*sorted(f"{k}={v}" for k, v in spec.environment.items()), "PATH=/usr/bin"],
        port_bindings=sorted(
            f"{p.container_port}/{p.protocol.value}->{p.host_ip or '0.0.0.0'}:{p.host_port}"
            for p in spec.ports
            if p.host_port
        ),
        restart_policy=spec.restart_policy,
        nano_cpus=round((spec.resources.limits.cpus or 0) * 1e9),
        memory=spec.resources.limits.memory or 0,
        networks=[d.network.name or ""],
    )


def observe(desired: list[DesiredContainer], hosts: list[str]) -> dict[str, ObservedHost]:
    """What observing the hosts finds after ``desired`` was applied."""
    out = {h: ObservedHost(host=h) for h in hosts}
    for d in desired:
        entry = out[d.host]
        entry.containers.append(
            ObservedContainer(
                id=f"id-{d.host}-{d.name}",
                docker_name=d.docker_name,
                host=d.host,
                stack=d.stack,
                name=d.name,
                spec_hash=d.spec_hash,
                field_hashes=d.field_hashes,
                live=live_of(d),
            )
        )
        if d.network.name not in entry.networks:
            entry.networks.append(d.network.name or "")
    return out


def _apply_changes(observed: dict[str, ObservedHost], changes: dict[str, Any]) -> None:
    for name, patch in changes.get("live", {}).items():
        for host in observed.values():
            for i, c in enumerate(host.containers):
                if c.name == name:
                    live = LiveConfig.model_validate({**c.live.dump(), **patch})
                    host.containers[i] = c.model_copy(update={"live": live})
    for name, patch in changes.get("containers", {}).items():
        for host in observed.values():
            for i, c in enumerate(host.containers):
                if c.name == name:
                    host.containers[i] = ObservedContainer.model_validate({**c.dump(), **patch})
    for raw in changes.get("extra", []):
        c = ObservedContainer.model_validate(raw)
        observed.setdefault(c.host, ObservedHost(host=c.host)).containers.append(c)
    for host, network in changes.get("networks_missing", {}).items():
        observed[host].networks.remove(network)
    for host, error in changes.get("errors", {}).items():
        observed[host] = ObservedHost(host=host, error=error)


def _stored(before: StackSpec | None, desired: list[DesiredContainer], raw: Any) -> StackRecord | None:
    if raw is True and before is not None:
        return StackRecord(
            id=before.name,
            name=before.name,
            status=StackStatus.running,
            placements={
                d.name: {
                    "hostId": d.host,
                    "containerId": f"id-{d.host}-{d.name}",
                    "dockerName": d.docker_name,
                }
                for d in desired
            },
            spec=before.dump(),
            revision=3,
        )
    return StackRecord.model_validate(raw) if raw else None


def build(case: Path) -> tuple[StackSpec | None, Inventory, dict[str, ObservedHost], StackRecord | None]:
    inventory = Inventory.model_validate(_read(case, "inventory.json"))
    raw_stack = _read(case, "stack.json")
    stack = StackSpec.model_validate(raw_stack) if raw_stack else None
    raw_before = _read(case, "before.json")
    before = StackSpec.model_validate(raw_before) if raw_before else None
    raw_before_inventory = _read(case, "before-inventory.json")
    before_inventory = Inventory.model_validate(raw_before_inventory) if raw_before_inventory else inventory
    desired = expand(before, before_inventory, {}) if before else []
    observed = observe(desired, [h.id for h in inventory.hosts])
    _apply_changes(observed, _read(case, "observed.json") or {})
    return stack, inventory, observed, _stored(before, desired, _read(case, "stored.json"))


def task_key(plan: Plan, task_id: str) -> str:
    task = next(t for t in plan.tasks if t.id == task_id)
    payload = task.payload
    if task.task_type in (TaskType.ensure_network, TaskType.remove_network):
        name = payload.get("name") or payload["network"]["name"]
    elif task.task_type is TaskType.delete:
        name = payload["dockerName"].split("-", 1)[1]
    elif "container" in payload:
        name = payload["container"]["name"]
    else:
        name = payload["dockerName"].split("-", 1)[1]
    return f"{task.task_type.value} {name}@{task.host_id}"


def check_dag(plan: Plan) -> None:
    """Ids unique, every dependency exists, no cycle, tasks listed in dependency order."""
    ids = [t.id for t in plan.tasks]
    assert len(ids) == len(set(ids))
    position = {t: i for i, t in enumerate(ids)}
    for task in plan.tasks:
        for dep in task.depends_on:
            assert dep in position, f"{task.description}: unknown dependency {dep}"
            assert position[dep] < position[task.id], f"{task.description} listed before its dependency"
    for action in plan.actions:
        assert all(t in position for t in action.task_ids)


def run(case: Path) -> Plan:
    stack, inventory, observed, stored = build(case)
    if stack is None:
        assert stored is not None or observed
        name = stored.name if stored else next(c.stack for o in observed.values() for c in o.containers)
        return plan_destroy(name, observed, stored, inventory)
    return plan_apply(stack, inventory, observed, stored)


# what expected.json may hold, and what each expected action must hold
EXPECTED_KEYS = {
    "error",
    "actions",
    "tasks",
    "edges",
    "no_edges",
    "exact_edges",
    "placements",
    "order",
    "zero_tasks",
}
ERROR_KEYS = {"type", "contains"}
ACTION_KEYS = {"kind", "at", "reason", "reasons", "changes"}
CHANGE_KEYS = {"field", "old", "new", "oldKnown", "sensitive"}


def check_expected_keys(expected: dict[str, Any]) -> None:
    """Refuse any key the test does not check: a typo must fail, not be ignored."""
    assert set(expected) <= EXPECTED_KEYS, f"unknown keys {sorted(set(expected) - EXPECTED_KEYS)}"
    if "error" in expected:
        assert set(expected) == {"error"} and set(expected["error"]) == ERROR_KEYS, expected
        return
    assert "actions" in expected, "every case lists its actions (kind, reason code, changes)"
    for action in expected["actions"]:
        assert set(action) == ACTION_KEYS, f"action keys {sorted(action)} != {sorted(ACTION_KEYS)}"
        for change in action["changes"]:
            assert {"field"} <= set(change) <= CHANGE_KEYS, f"change keys {sorted(change)}"


def action_facts(plan: Plan) -> list[dict[str, Any]]:
    """Each action as expected.json spells it; changes without their default flags. A create's
    changes are every field of its container (tests/unit/test_plan_diffs.py checks them), so the
    cases list them as []."""
    return [
        {
            "kind": a.kind.value,
            "at": f"{a.name}@{a.host}",
            "reason": a.reason.value,
            "reasons": a.reasons,
            "changes": []
            if a.reason is ActionReason.new_instance
            else [c.model_dump(mode="json", by_alias=True, exclude_defaults=True) for c in a.changes],
        }
        for a in plan.actions
    ]


def _sorted(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_plan_case(case: str) -> None:
    path = CASES / case
    expected = _read(path, "expected.json")
    check_expected_keys(expected)
    if "error" in expected:
        with pytest.raises(GraphiumError) as info:
            run(path)
        assert type(info.value).__name__ == expected["error"]["type"]
        for part in expected["error"]["contains"]:
            assert part in str(info.value)
        return
    plan = run(path)
    check_dag(plan)
    assert all(a.kind is a.reason.kind for a in plan.actions)
    keys = {t.id: task_key(plan, t.id) for t in plan.tasks}
    assert _sorted(action_facts(plan)) == _sorted(expected["actions"])
    if "tasks" in expected:
        assert sorted(keys.values()) == sorted(expected["tasks"])
    edges = {(keys[t.id], keys[d]) for t in plan.tasks for d in t.depends_on}
    for edge in expected.get("edges", []):
        assert tuple(edge) in edges, f"missing edge {edge}; have {sorted(edges)}"
    for edge in expected.get("no_edges", []):
        assert tuple(edge) not in edges, f"unexpected edge {edge}"
    if "exact_edges" in expected:
        assert sorted(edges) == sorted(tuple(e) for e in expected["exact_edges"])
    if "placements" in expected:
        assert plan.placements == expected["placements"]
    for key, order in expected.get("order", {}).items():
        listed = [keys[t.id] for t in plan.tasks]
        assert [k for k in listed if k in order] == order, key
    if "zero_tasks" in expected:
        assert expected["zero_tasks"] is True, "zero_tasks is either true or absent"
        assert plan.tasks == [] and not plan.has_changes


def test_every_reason_code_has_a_case() -> None:
    """Each ActionReason is one branch of the planner; each has a data case that reaches it."""
    seen = {
        action["reason"]
        for case in CASES.iterdir()
        if case.is_dir()
        for action in _read(case, "expected.json").get("actions", [])
    }
    assert seen == {r.value for r in ActionReason}


def test_a_misspelled_expectation_is_refused() -> None:
    with pytest.raises(AssertionError, match="unknown keys"):
        check_expected_keys({"actions": [], "exact_edge": []})
    keep = {"kind": "keep", "at": "a@h", "reason": "unchanged", "reasons": []}
    with pytest.raises(AssertionError, match="action keys"):
        check_expected_keys({"actions": [keep]})  # "changes" left out
    with pytest.raises(AssertionError, match="change keys"):
        check_expected_keys({"actions": [{**keep, "changes": [{"field": "image", "olds": "x"}]}]})
    with pytest.raises(AssertionError):
        check_expected_keys({"error": {"type": "PlanError", "contain": []}})


# properties -------------------------------------------------------------------------------------

STACK = {
    "name": "shop",
    "deployment": {"placementStrategy": "spread"},
    "containers": [
        {"name": "db", "image": "postgres:16", "environment": {"POSTGRES_PASSWORD": "s3cret"}},
        {"name": "api", "image": "api:1", "dependsOn": ["db"], "replicas": 2},
        {
            "name": "web",
            "image": "nginx:1",
            "dependsOn": ["api"],
            "ports": [{"containerPort": 80, "hostPort": 80}],
        },
    ],
}
HOSTS = Inventory.model_validate({"hosts": [{"@id": "vm1"}, {"@id": "vm2"}]})


def _applied(stack: StackSpec) -> dict[str, ObservedHost]:
    return observe(expand(stack, HOSTS, {}), ["vm1", "vm2"])


def test_apply_then_replan_is_a_no_op() -> None:
    stack = StackSpec.model_validate(STACK)
    plan = plan_apply(stack, HOSTS, {h: ObservedHost(host=h) for h in ("vm1", "vm2")}, None)
    assert plan.counts()["create"] == 4
    again = plan_apply(stack, HOSTS, _applied(stack), None)
    assert again.tasks == [] and again.counts() == {
        "create": 0,
        "replace": 0,
        "keep": 4,
        "remove": 0,
        "drift": 0,
    }
    assert again.placements == plan.placements


def test_plan_is_deterministic_and_ids_derive_from_content() -> None:
    stack = StackSpec.model_validate(STACK)
    empty = {h: ObservedHost(host=h) for h in ("vm1", "vm2")}
    one, two = (
        plan_apply(stack, HOSTS, empty, None),
        plan_apply(stack, HOSTS, dict(reversed(empty.items())), None),
    )
    assert [t.id for t in one.tasks] == [t.id for t in two.tasks]
    assert [(t.payload, t.depends_on, t.priority) for t in one.tasks] == [
        (t.payload, t.depends_on, t.priority) for t in two.tasks
    ]
    assert one.stack_spec == stack.dump() and one.fingerprint == two.fingerprint


def test_fingerprint_follows_observed_and_stored_state() -> None:
    stack = StackSpec.model_validate(STACK)
    observed = _applied(stack)
    base = fingerprint("shop", observed, None)
    assert base == fingerprint("shop", _applied(stack), None)
    stopped = _applied(stack)
    c = stopped["vm1"].containers[0]
    stopped["vm1"].containers[0] = c.model_copy(
        update={"live": c.live.model_copy(update={"state": "exited"})}
    )
    assert fingerprint("shop", stopped, None) != base
    record = StackRecord(id="shop", name="shop", status=StackStatus.running, revision=4)
    assert fingerprint("shop", observed, record) != base
    no_net = _applied(stack)
    no_net["vm2"].networks.clear()
    assert fingerprint("shop", no_net, None) != base
    other_stack = _applied(stack)
    other_stack["vm2"].containers.append(c.model_copy(update={"stack": "other", "id": "zzz"}))
    assert fingerprint("shop", other_stack, None) == base


def test_check_fresh_refuses_a_stale_plan() -> None:
    stack = StackSpec.model_validate(STACK)
    empty = {h: ObservedHost(host=h) for h in ("vm1", "vm2")}
    plan = plan_apply(stack, HOSTS, empty, None)
    check_fresh(Plan.model_validate(json.loads(json.dumps(plan.dump()))), empty, None)
    with pytest.raises(StalePlanError):
        check_fresh(plan, _applied(stack), None)


def test_spec_hash_ignores_what_does_not_change_the_container() -> None:
    base = StackSpec.model_validate(STACK).containers[2]
    same = base.model_copy(
        update={"description": "x", "depends_on": [], "replicas": 3, "located_in_host": "vm2"}
    )
    assert spec_hashes(base, "n") == spec_hashes(same, "n")
    explicit_default = base.model_validate(
        {**base.dump(), "restartPolicy": {"name": "no"}, "stopTimeout": 10}
    )
    assert spec_hashes(explicit_default, "n")[0] == spec_hashes(base, "n")[0]
    changed_hash, fields = spec_hashes(base.model_copy(update={"user": "1000"}), "n")
    base_hash, base_fields = spec_hashes(base, "n")
    assert changed_hash != base_hash and changed_hash.startswith("v1:")
    assert [f for f in fields if fields[f] != base_fields[f]] == ["user"]
    assert spec_hashes(base, "other")[1]["network"] != base_fields["network"]


def test_secret_values_never_appear_in_reasons_or_descriptions() -> None:
    stack = StackSpec.model_validate(STACK)
    observed = _applied(stack)
    for host in observed.values():
        for i, c in enumerate(host.containers):
            host.containers[i] = c.model_copy(update={"live": c.live.model_copy(update={"env": []})})
    plan = plan_apply(stack, HOSTS, observed, None)
    text = json.dumps([a.dump() for a in plan.actions]) + json.dumps([t.description for t in plan.tasks])
    assert "POSTGRES_PASSWORD" in text and "s3cret" not in text


def test_an_unobserved_target_host_is_refused() -> None:
    stack = StackSpec.model_validate(STACK)
    with pytest.raises(PlanError, match="vm2"):
        plan_apply(stack, HOSTS, {"vm1": ObservedHost(host="vm1")}, None)


def test_replicas_zero_gives_no_instance_and_removes_running_ones() -> None:
    stack = StackSpec.model_validate(STACK)
    observed = _applied(stack)
    scaled = StackSpec.model_validate(
        {
            **STACK,
            "containers": [
                *STACK["containers"][:1],
                {**STACK["containers"][1], "replicas": 0},
                {**STACK["containers"][2], "dependsOn": []},
            ],
        }
    )
    plan = plan_apply(scaled, HOSTS, observed, None)
    assert sorted((a.kind.value, a.name) for a in plan.actions if a.kind.value != "keep") == [
        ("remove", "api-1"),
        ("remove", "api-2"),
    ]


def test_deploy_timeout_covers_the_health_check() -> None:
    raw = {
        "name": "s",
        "containers": [
            {
                "name": "a",
                "image": "x",
                "healthCheck": {
                    "test": "true",
                    "interval": "10s",
                    "timeout": "5s",
                    "retries": 4,
                    "startPeriod": "20s",
                },
            }
        ],
    }
    inv = Inventory.model_validate({"hosts": [{"@id": "vm1"}]})
    plan = plan_apply(StackSpec.model_validate(raw), inv, {"vm1": ObservedHost(host="vm1")}, None)
    deploy = next(t for t in plan.tasks if t.task_type is TaskType.deploy)
    assert deploy.timeout_seconds >= 20 + 4 * 15


def test_large_plan_plans_every_replica() -> None:
    # speed is measured by benchmarks/bench_plan.py, never asserted in a test
    containers = [
        {
            "name": f"c{i}",
            "image": "busybox",
            "replicas": 10,
            "ports": [{"containerPort": 80, "hostPort": 10000 + i}],
        }
        for i in range(100)
    ]
    stack = StackSpec.model_validate(
        {"name": "big", "deployment": {"placementStrategy": "spread"}, "containers": containers}
    )
    inv = Inventory.model_validate({"hosts": [{"@id": f"h{i:03}"} for i in range(100)]})
    observed = {h.id: ObservedHost(host=h.id) for h in inv.hosts}
    plan = plan_apply(stack, inv, observed, None)
    assert len(plan.tasks) == 1100


def test_a_container_set_aside_by_an_interrupted_replace_is_cleaned_up() -> None:
    """A replace that died after renaming the old container aside leaves `<name>-replaced-<id>`."""
    stack = StackSpec.model_validate(STACK)
    observed = _applied(stack)
    vm = next(h for h in observed.values() if h.containers)
    first = vm.containers[0]
    aside = first.model_copy(update={"id": "id-aside", "docker_name": f"{first.docker_name}-replaced-0123"})
    # only the set-aside one: recreated under its own name
    vm.containers[0] = aside
    plan = plan_apply(stack, HOSTS, observed, None)
    [action] = [a for a in plan.actions if a.name == first.name]
    assert action.kind is ActionKind.drift and any("replaced-0123" in r for r in action.reasons)
    assert action.reason is ActionReason.interrupted_replace  # graphium's own, not out-of-band drift
    [task] = [t for t in plan.tasks if t.id in action.task_ids]
    assert task.task_type is TaskType.replace and task.payload["oldContainerId"] == "id-aside"
    # both: the right one is kept, the set-aside one removed
    vm.containers.append(first)
    plan = plan_apply(stack, HOSTS, observed, None)
    kinds = {(a.kind, a.docker_name) for a in plan.actions if a.name == first.name}
    assert kinds == {(ActionKind.keep, first.docker_name), (ActionKind.remove, aside.docker_name)}
