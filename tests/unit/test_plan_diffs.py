"""Diffs with values: a create lists every field it sets, a replace every changed leaf old -> new.

In the human plan and as data in ``plan --json`` (``changes``: field, old, new, oldKnown,
sensitive), health-check timings, resources, mounts and user included; secrets never.
"""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console

from graphium.cli.common import plan_json
from graphium.cli.output import render_plan
from graphium.plan.model import ActionKind, FieldChange, Plan
from graphium.plan.planner import expand, plan_apply
from graphium.stack.models import Inventory, StackSpec
from tests.unit.test_planner import _stored, observe

INVENTORY = Inventory.model_validate({"hosts": [{"@id": "vm1"}]})


def stack(**changes: Any) -> StackSpec:
    db = {
        "name": "db",
        "image": "postgres:15-alpine",
        "environment": {"POSTGRES_PASSWORD": "pw-4411-x", "MODE": "primary"},
        "ports": [{"containerPort": 5432, "hostPort": 15432}],
        "mounts": [{"type": "volume", "source": "pgdata", "target": "/var/lib/postgresql/data"}],
        "healthCheck": {"test": "pg_isready", "interval": 5, "retries": 10},
        "resources": {"limits": {"cpus": 0.5, "memory": 268435456}},
        "user": "70",
        "restartPolicy": {"name": "unless-stopped"},
        **changes,
    }
    return StackSpec.model_validate({"name": "shop", "locatedInHost": "vm1", "containers": [db]})


def plan_of(new: StackSpec, before: StackSpec | None = None) -> Plan:
    if before is None:
        return plan_apply(new, INVENTORY, observe([], ["vm1"]))
    desired = expand(before, INVENTORY, {})
    return plan_apply(new, INVENTORY, observe(desired, ["vm1"]), _stored(before, desired, True))


def rendered(plan: Plan) -> str:
    out = io.StringIO()
    render_plan(plan, Console(file=out, width=240, color_system=None, highlight=False))
    return out.getvalue()


def changes_of(plan: Plan, kind: ActionKind) -> dict[str, FieldChange]:
    [action] = [a for a in plan.actions if a.kind is kind]
    return {c.field: c for c in action.changes}


def test_a_create_lists_every_field_as_data() -> None:
    plan = plan_of(stack())
    fields = changes_of(plan, ActionKind.create)
    expected_new = {
        "image": "postgres:15-alpine",
        "healthCheck.interval": 5.0,
        "healthCheck.timeout": 30.0,  # defaults spelled out: what will run
        "healthCheck.retries": 10,
        "healthCheck.startPeriod": 0.0,
        "healthCheck.test": ["CMD-SHELL", "pg_isready"],
        "resources.limits.cpus": 0.5,
        "resources.limits.memory": 268435456,
        "user": "70",
        "restartPolicy.name": "unless-stopped",
        "environment.MODE": "primary",
        "environment.POSTGRES_PASSWORD": "(sensitive)",
        "stopTimeout": 10.0,
        "network": "shop-net",
    }
    for field, new in expected_new.items():
        assert fields[field].new == new and fields[field].old is None, field
    assert fields["environment.POSTGRES_PASSWORD"].sensitive
    [mount] = fields["mounts"].new
    assert {k: mount[k] for k in ("type", "source", "target")} == {
        "type": "volume",
        "source": "pgdata",
        "target": "/var/lib/postgresql/data",
    }
    assert fields["ports"].new[0]["hostPort"] == 15432
    machine = json.dumps(plan_json(plan))
    assert '"field": "healthCheck.interval"' in machine and "pw-4411-x" not in machine


def test_a_create_shows_every_field_to_people() -> None:
    text = rendered(plan_of(stack()))
    for line in (
        "image      postgres:15-alpine",
        "ports      15432->5432/tcp",
        "env        MODE=primary, POSTGRES_PASSWORD=(sensitive)",
        "mounts     pgdata:/var/lib/postgresql/data",
        "restart    unless-stopped",
        "health     CMD-SHELL pg_isready (interval 5s, timeout 30s, retries 10, start period 0s)",
        "resources  limits cpus 0.5, memory 256 MiB",
        "user       70",
    ):
        assert line in text, (line, text)
    assert "pw-4411-x" not in text


def test_a_replace_shows_each_changed_leaf_old_to_new() -> None:
    new = stack(image="postgres:16-alpine", healthCheck={"test": "pg_isready", "interval": 10, "retries": 10})
    plan = plan_of(new, before=stack())
    fields = changes_of(plan, ActionKind.replace)
    assert sorted(fields) == ["healthCheck.interval", "image"]
    assert (fields["healthCheck.interval"].old, fields["healthCheck.interval"].new) == (5.0, 10.0)
    text = rendered(plan)
    assert "forces replacement: image, healthCheck.interval" in text
    assert "~ healthCheck.interval   5.0 -> 10.0" in text
    assert '~ image                  "postgres:15-alpine" -> "postgres:16-alpine"' in text


def test_a_changed_secret_reads_sensitive_changed() -> None:
    env = {"POSTGRES_PASSWORD": "pw-other-22", "MODE": "primary"}
    plan = plan_of(stack(environment=env), before=stack())
    [change] = changes_of(plan, ActionKind.replace).values()
    assert (change.field, change.old, change.new, change.sensitive) == (
        "environment.POSTGRES_PASSWORD",
        "(sensitive)",
        "(sensitive)",
        True,
    )
    text = rendered(plan)
    assert "~ environment.POSTGRES_PASSWORD (sensitive, changed)" in text
    assert "pw-other-22" not in text and "pw-4411-x" not in text
