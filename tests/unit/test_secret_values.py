"""Secrets masked by value: a sensitive variable interpolated into an innocent key never shows.

``DATABASE_URL: postgres://app:${DB_PASSWORD}@db/orders`` has a key no one would call secret;
the value of ``DB_PASSWORD`` must still be masked in plans (human and ``--json``), saved plans,
task errors and events, while the container gets the real value.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console

from graphium.cli.common import plan_json
from graphium.cli.output import render_plan
from graphium.docker.interpreter import _secret_values
from graphium.errors import GraphiumError, StackError, StalePlanError
from graphium.plan.model import ActionKind, Plan
from graphium.plan.planner import expand, plan_apply
from graphium.plan.saved import seal, unseal
from graphium.records.stack import StackRecord, StackStatus
from graphium.run.runner import RunResult
from graphium.stack.loader import load_stack, load_stack_data
from graphium.stack.models import ContainerSpec, Inventory
from graphium.stack.secrets import redact_payload
from graphium.stack.variables import resolve
from tests.unit.test_planner import _stored, observe

PASSWORD = "pg-pass-7431"
ENV = {"DB_PASSWORD": PASSWORD, "TAG": "1.25", "PGPW": "other-5512", "API": "tok-9981"}
INVENTORY = Inventory.model_validate({"hosts": [{"@id": "vm1"}]})


def document(url: str = "postgres://app:${DB_PASSWORD}@db/orders") -> dict[str, Any]:
    return {
        "@context": "https://schema.org",
        "@graph": [
            {
                "@type": "Stack",
                "name": "orders",
                "locatedInHost": "vm1",
                "hasPart": [
                    {
                        "@type": "Container",
                        "name": "app",
                        "image": "nginx:${TAG}",
                        "environment": {
                            "DATABASE_URL": url,
                            "POSTGRES_PASSWORD": "${PGPW}",
                            "UPSTREAM": "${API}",
                            "MODE": "${MODE:-fast-mode}",
                        },
                        "sensitive": ["API"],
                    }
                ],
            }
        ],
    }


def make_plan(environ: dict[str, str] = ENV, *, before: dict[str, Any] | None = None) -> Plan:
    doc = load_stack_data(document(), "<dict>")
    resolved = resolve(doc.stack, environ, "<dict>")
    observed, stored = observe([], ["vm1"]), None
    if before is not None:  # deployed before, with its record
        old = resolve(load_stack_data(before, "<dict>").stack, ENV, "<dict>").spec
        desired = expand(old, INVENTORY, {})
        observed, stored = observe(desired, ["vm1"]), _stored(old, desired, True)
    values = resolved.secret_values()
    plan = plan_apply(resolved.spec, INVENTORY, observed, stored, secret_values=values)
    plan.secret_variables = dict(resolved.secrets)
    return plan


def rendered(plan: Plan) -> str:
    out = io.StringIO()
    render_plan(plan, Console(file=out, width=240, color_system=None, highlight=False))
    return out.getvalue()


def test_resolve_records_the_values_of_sensitive_variables_only() -> None:
    resolved = resolve(load_stack_data(document(), "<dict>").stack, ENV, "<dict>")
    # named like a secret, feeding a secret key, declared in `sensitive`; TAG and MODE are not
    assert resolved.secrets == {"DB_PASSWORD": PASSWORD, "PGPW": "other-5512", "API": "tok-9981"}
    assert resolved.defaults == frozenset()
    [app] = resolved.spec.containers
    assert app.environment["DATABASE_URL"] == f"postgres://app:{PASSWORD}@db/orders"  # the real value


def test_a_default_of_a_sensitive_variable_is_masked_but_not_sealed() -> None:
    doc = load_stack_data(document("postgres://app:${DB_PASSWORD:-dev-default-pw}@db"), "<dict>")
    resolved = resolve(doc.stack, {k: v for k, v in ENV.items() if k != "DB_PASSWORD"}, "<dict>")
    assert "DB_PASSWORD" not in resolved.secrets
    assert "dev-default-pw" in resolved.secret_values()


def test_plan_and_its_json_never_show_the_value() -> None:
    plan = make_plan()
    assert PASSWORD in plan.secret_values()
    [task] = [t for t in plan.tasks if t.payload.get("container")]
    assert task.payload["secretValues"] == sorted({PASSWORD, "other-5512", "tok-9981"})
    assert task.payload["container"]["spec"]["environment"]["DATABASE_URL"].endswith(f"{PASSWORD}@db/orders")
    text = rendered(plan)
    assert "DATABASE_URL=postgres://app:(sensitive)@db/orders" in text
    assert "1.25" in text  # what is not secret still shows
    machine = json.dumps(plan_json(plan))
    for secret in ("other-5512", "tok-9981", PASSWORD):
        assert secret not in text and secret not in machine
        assert secret not in repr(plan.actions)


def test_a_changed_field_holding_a_secret_reads_sensitive_on_both_sides() -> None:
    plan = make_plan(before=document("postgres://app:${DB_PASSWORD}@old-db/orders"))
    [replace] = [a for a in plan.actions if a.kind is ActionKind.replace]
    [url] = [c for c in replace.changes if c.field == "environment.DATABASE_URL"]
    assert (url.old, url.new, url.sensitive) == ("(sensitive)", "(sensitive)", True)
    assert PASSWORD not in rendered(plan) and PASSWORD not in json.dumps(plan_json(plan))


def test_saved_plan_holds_placeholders_and_unseals_to_the_same_plan() -> None:
    plan = make_plan()
    sealed = seal(plan)
    text = json.dumps(sealed)
    assert sealed["schemaVersion"] == 3
    assert PASSWORD not in text and "other-5512" not in text and "tok-9981" not in text
    assert "postgres://app:(sensitive:DB_PASSWORD)@db/orders" in text
    again = unseal(json.loads(text), "plan.json", ENV)
    assert again.dump() == plan.dump()
    assert again.secret_variables == plan.secret_variables


def test_unseal_refuses_a_missing_or_changed_variable_and_another_version() -> None:
    sealed = json.loads(json.dumps(seal(make_plan())))
    with pytest.raises(GraphiumError, match=r"needs the sensitive variable.*DB_PASSWORD"):
        unseal(sealed, "plan.json", {k: v for k, v in ENV.items() if k != "DB_PASSWORD"})
    with pytest.raises(StalePlanError, match="another value than when the plan was made"):
        unseal(sealed, "plan.json", {**ENV, "DB_PASSWORD": "changed-since"})
    with pytest.raises(GraphiumError, match="schema version 2, but this graphium reads version 3"):
        unseal({**sealed, "schemaVersion": 2}, "plan.json", ENV)


def test_task_errors_and_views_mask_the_listed_values() -> None:
    plan = make_plan()
    [task] = [t for t in plan.tasks if t.payload.get("container")]
    assert PASSWORD in _secret_values(task)  # what the interpreter masks in the errors it raises
    shown = json.dumps(redact_payload(task.payload))  # what the server's task views show
    assert PASSWORD not in shown and "(sensitive)" in shown


def test_a_short_value_is_sealed_where_it_stands_alone() -> None:
    plan = make_plan({**ENV, "PGPW": "abc"})
    env = seal(plan)["tasks"][-1]["payload"]["container"]["spec"]["environment"]
    assert env["POSTGRES_PASSWORD"] == "(sensitive:PGPW)"
    assert env["MODE"] == "fast-mode"  # not every short or innocent string


def test_repr_and_str_of_public_objects_mask_secrets() -> None:
    plan = make_plan()
    [task] = [t for t in plan.tasks if t.payload.get("container")]
    spec = ContainerSpec(name="db", image="x", environment={"POSTGRES_PASSWORD": "pw1", "MODE": "pw1x"})
    record = StackRecord(id="orders", name="orders", status=StackStatus.running, spec=plan.stack_spec)
    result = RunResult(tasks={task.id: task}, duration=1.0, failed=[task])
    for obj in (plan, task, *plan.actions, spec, record, result, load_stack_data(document(), "<dict>")):
        for text in (repr(obj), str(obj)):
            for secret in (PASSWORD, "other-5512", "tok-9981"):
                assert secret not in text, (type(obj).__name__, text)
    assert "'POSTGRES_PASSWORD': '(sensitive)'" in repr(spec)  # a short secret, where it stands alone
    assert "'MODE': 'pw1x'" in repr(spec)  # ... and nowhere else
    assert "postgres://app:(sensitive)@db/orders" in repr(task)


def test_a_stack_given_as_a_dict_is_named_in_errors() -> None:
    bad = document()
    bad["@graph"][0]["hasPart"][0]["restartPolicy"] = "sometimes"
    with pytest.raises(StackError) as info:
        load_stack(bad)
    assert "<dict>" in str(info.value) and "restartPolicy" in str(info.value)
    assert load_stack(document()).stack.name == "orders"
