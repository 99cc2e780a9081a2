"""Stack versions: which version a rollback picks, what a version records of a plan, how its
definition is resolved again, and how a rollback's plan pins the old placements."""

from __future__ import annotations

from typing import Any

import pytest

from graphium.errors import PlanError, StackError
from graphium.plan.model import ActionKind, ActionReason, ObservedHost, Plan
from graphium.plan.planner import expand, plan_apply
from graphium.plan.rollback import plan_rollback
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.version import (
    StackVersion,
    VersionKind,
    current_version,
    definition_digest,
    rollback_target,
)
from graphium.run import versions
from graphium.stack.models import Inventory, StackSpec
from tests.unit.test_planner import observe

HOSTS = Inventory.model_validate({"hosts": [{"@id": "vm1"}, {"@id": "vm2"}]})


def definition(image: str = "nginx:${TAG}", **extra: Any) -> dict[str, Any]:
    return {"name": "web", "containers": [{"name": "web", "image": image, **extra}]}


def version(number: int, image: str = "nginx:1", run: str | None = None, **fields: Any) -> StackVersion:
    doc = definition(image)
    return StackVersion(
        number=number,
        stack="web",
        run_id=run or f"r{number}",
        definition=doc,
        digest=definition_digest(doc),
        **fields,
    )


def stack(status: StackStatus, run: str) -> StackRecord:
    return StackRecord(id="web", name="web", status=status, run_id=run)


# which version ---------------------------------------------------------------------------------
def test_running_the_newest_version_rolls_back_to_the_one_before() -> None:
    kept = [version(1, "nginx:1"), version(2, "nginx:2")]
    assert current_version(kept, stack(StackStatus.running, "r2")) is kept[1]
    assert rollback_target(kept, stack(StackStatus.running, "r2")).number == 1


def test_versions_with_the_running_definition_are_skipped() -> None:
    kept = [version(1, "nginx:1"), version(2, "nginx:2"), version(3, "nginx:2")]  # 3: a drift repair
    assert rollback_target(kept, stack(StackStatus.running, "r3")).number == 1


def test_after_a_failed_apply_the_last_good_version_is_the_target() -> None:
    kept = [version(1, "nginx:1"), version(2, "nginx:2")]
    failed = stack(StackStatus.error, "r3")  # the failed run recorded no version
    assert current_version(kept, failed) is None
    assert rollback_target(kept, failed).number == 2
    assert rollback_target(kept, None).number == 2  # destroyed since: bring back the last one


def test_to_picks_a_number_and_names_the_kept_ones_when_absent() -> None:
    kept = [version(4), version(5, "nginx:5")]
    assert rollback_target(kept, stack(StackStatus.running, "r5"), to=4).number == 4
    with pytest.raises(PlanError, match="no version 2; the recorded versions are 4, 5"):
        rollback_target(kept, None, to=2)


def test_no_versions_or_nothing_different_is_an_error() -> None:
    with pytest.raises(PlanError, match="no recorded versions"):
        rollback_target([], stack(StackStatus.running, "r1"))
    with pytest.raises(PlanError, match="no earlier version differs"):
        rollback_target([version(1), version(2)], stack(StackStatus.running, "r2"))


def test_result_says_what_the_apply_did() -> None:
    assert version(1, summary={"create": 2, "keep": 1}).result() == "applied: 2 create"
    back = version(3, kind=VersionKind.rollback, rollback_of=1, summary={"replace": 1})
    assert back.result() == "rollback to 1: 1 replace"
    assert version(4).result() == "applied: no container changes"


# what a version records ------------------------------------------------------------------------
def _plan(**fields: Any) -> Plan:
    resolved = {"name": "web", "containers": [{"name": "web", "image": "nginx:1.27"}]}
    return Plan(stack="web", fingerprint="f", stack_spec=resolved, placements={"web": "vm1"}, **fields)


def test_a_version_keeps_the_definition_as_written_and_the_resolved_images() -> None:
    made = versions.version_of(_plan(definition=definition()), "run-1")
    assert made is not None
    assert made.definition == definition() and made.digest == definition_digest(definition())
    assert made.images == {"web": "nginx:1.27"} and made.placements == {"web": "vm1"}
    assert made.kind is VersionKind.apply and made.run_id == "run-1" and "@" in made.applied_by
    back = versions.version_of(_plan(definition=definition(), rollback_of=3), "run-2")
    assert back is not None and back.kind is VersionKind.rollback and back.rollback_of == 3


def test_destroys_and_plans_without_a_definition_make_no_version() -> None:
    assert versions.version_of(_plan(), "r") is None
    assert versions.version_of(_plan(definition=definition(), destroy=True), "r") is None


def test_a_definition_is_resolved_from_the_environment_of_the_rollback() -> None:
    doc = definition(environment={"DB_PASSWORD": "${DB_PASSWORD}"})
    kept = StackVersion(number=2, stack="web", definition=doc)
    spec = versions.definition(kept, {"TAG": "1.27", "DB_PASSWORD": "rotated"}).spec
    assert spec.containers[0].image == "nginx:1.27"
    assert spec.containers[0].environment == {"DB_PASSWORD": "rotated"}
    with pytest.raises(StackError, match="web version 2") as caught:
        versions.definition(kept, {"TAG": "1"})
    assert "DB_PASSWORD is not set" in str(caught.value)


def test_a_definition_that_no_longer_loads_is_a_clear_error() -> None:
    kept = StackVersion(number=1, stack="web", definition={"name": "web", "containerz": []})
    with pytest.raises(StackError, match=r"web version 1.*no longer loads"):
        versions.definition(kept, {})


# the plan of a rollback ------------------------------------------------------------------------
SPREAD = {"placementStrategy": "spread"}


def spread(image: str) -> StackSpec:
    return StackSpec.model_validate({**definition(image), "deployment": SPREAD})


def _running(image: str, host: str) -> dict[str, ObservedHost]:
    spec = spread(image)
    placed = expand(spec, HOSTS, {"web": host})
    return observe(placed, ["vm1", "vm2"])


def test_a_rollback_plans_the_old_definition_on_its_old_host() -> None:
    old = spread("nginx:1")
    observed = _running("nginx:2", "vm1")
    plain = plan_apply(old, HOSTS, observed, None)
    assert plain.placements == {"web": "vm1"}  # an apply keeps it where it runs
    back = plan_rollback(old, HOSTS, observed, None, {"web": "vm2"})
    assert back.placements == {"web": "vm2"}
    (action,) = back.actions
    assert action.kind is ActionKind.replace and action.reason is ActionReason.host_changed


def test_a_rollback_ignores_a_pin_to_a_host_no_longer_in_the_inventory() -> None:
    old = spread("nginx:1")
    back = plan_rollback(old, HOSTS, _running("nginx:2", "vm1"), None, {"web": "gone"})
    assert back.placements == {"web": "vm1"}
    (action,) = back.actions
    assert action.reason is ActionReason.config_changed
    assert [(c.field, c.new) for c in action.changes if c.field == "image"] == [("image", "nginx:1")]


def test_only_variables_that_cannot_hold_a_secret_are_recorded() -> None:
    spec = StackSpec.model_validate(
        {
            "name": "web",
            "containers": [
                {
                    "name": "web",
                    "image": "app:${TAG}",
                    "command": ["serve", "--port=${PORT}"],  # command and args may hold secrets
                    "user": "${PORT}",
                    "environment": {"URL": "postgres://app:${PGPASS}@db/${DB}", "MODE": "${MODE}"},
                    "workingDir": "/srv/${APP}",
                    "labels": {"by": "${API_TOKEN_OWNER}", "team": "${TEAM:-core}"},
                }
            ],
        }
    )
    environ = {"TAG": "7", "APP": "shop", "PORT": "80", "PGPASS": "pw", "MODE": "x", "API_TOKEN_OWNER": "a"}
    # PORT is also in the command; TEAM is unset, so its default stays in the template
    assert versions.recordable_variables(spec, environ) == {"APP": "shop", "TAG": "7"}


def test_a_rollback_restores_recorded_variables_and_reads_secrets_again() -> None:
    doc = definition(environment={"DB_PASSWORD": "${DB_PASSWORD}"})
    kept = StackVersion(number=1, stack="web", definition=doc, variables={"TAG": "1"})
    spec = versions.definition(kept, {"TAG": "2", "DB_PASSWORD": "now"}).spec
    assert spec.containers[0].image == "nginx:1"  # the tag the version ran, not today's
    assert spec.containers[0].environment == {"DB_PASSWORD": "now"}


def test_versions_that_differ_only_in_a_recorded_variable_differ() -> None:
    one = versions.version_of(_plan(definition=definition(), variables={"TAG": "1"}), "r1")
    two = versions.version_of(_plan(definition=definition(), variables={"TAG": "2"}), "r2")
    assert one is not None and two is not None and one.digest != two.digest
    running = stack(StackStatus.running, "r2")
    kept = [one.model_copy(update={"number": 1}), two.model_copy(update={"number": 2})]
    assert rollback_target(kept, running).number == 1
