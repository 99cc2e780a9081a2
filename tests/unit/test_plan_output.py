"""Plan output: ``plan --json`` carries reason codes and field changes; the human plan shows them.

Plans come from the planner's data cases (tests/data/plans/), so what is rendered is what the
planner really produces. Secret values must appear in neither form.
"""

from __future__ import annotations

import io
import json

from rich.console import Console

from graphium.cli.common import plan_json
from graphium.cli.output import change_line, render_plan
from graphium.plan.model import FieldChange, Plan
from tests.unit.test_planner import CASES, run

SECRETS = ("old-pw-1234", "new-pw-5678")  # the password in change-secret-is-masked, before and after


def rendered(plan: Plan) -> str:
    out = io.StringIO()
    render_plan(plan, Console(file=out, width=240, color_system=None, highlight=False))
    return out.getvalue()


def test_plan_json_carries_reason_codes_and_masked_changes() -> None:
    data = plan_json(run(CASES / "change-secret-is-masked"))
    text = json.dumps(data)
    assert not any(secret in text for secret in SECRETS)
    [replace] = [a for a in data["actions"] if a["kind"] == "replace"]
    assert replace["reason"] == "config-changed" and replace["reasons"] == ["command", "environment"]
    by_field = {c["field"]: c for c in replace["changes"]}
    assert sorted(by_field) == ["command", "environment.POSTGRES_PASSWORD"]
    password = by_field["environment.POSTGRES_PASSWORD"]
    assert password == {
        "field": "environment.POSTGRES_PASSWORD",
        "old": "(sensitive)",
        "new": "(sensitive)",
        "oldKnown": True,
        "sensitive": True,
    }
    assert by_field["command"]["new"] == ["postgres", "-c", "password=(sensitive)"]
    assert {a["reason"] for a in data["actions"] if a["kind"] == "keep"} == {"unchanged"}


def test_replace_shows_the_fields_that_force_it_and_never_a_secret() -> None:
    text = rendered(run(CASES / "change-secret-is-masked"))
    assert "-/+ db on vm1 (shop-db)  forces replacement: command, environment.POSTGRES_PASSWORD" in text
    assert "~ environment.POSTGRES_PASSWORD (sensitive, changed)" in text
    assert "command    postgres -c password=(sensitive)" in text  # the details mask copies too
    assert not any(secret in text for secret in SECRETS)


def test_an_old_value_known_only_by_hash_says_so() -> None:
    text = rendered(run(CASES / "change-without-record-old-unknown"))
    unknown = "(only its hash was recorded) -> "
    assert f'~ command                {unknown}["postgres", "-c", "password=(sensitive)"]' in text
    assert "~ environment            (only its hash was recorded) -> " in text
    assert not any(secret in text for secret in SECRETS)


def test_drift_lists_what_changed_with_live_and_desired_values() -> None:
    text = rendered(run(CASES / "drift-out-of-band-changes-replace"))
    assert "~ api-2 on vm2 (shop-api-2)  changed outside graphium: state" in text
    assert '~ state                  "paused" -> "running"' in text
    assert '~ portBindings           ["80/tcp->:9090"] -> ["80/tcp->:8080"]' in text
    text = rendered(run(CASES / "drift-missing-env-names-keys-only"))
    assert "+ environment.API_TOKEN  (sensitive)" in text
    assert '~ environment.MODE       "slow" -> "fast"' in text


def test_a_move_shows_the_host_change() -> None:
    text = rendered(run(CASES / "moved-to-another-host"))
    assert "-/+ b on vm1 (m-b)  forces replacement: host, image" in text
    assert '~ host                   "vm2" -> "vm1"' in text


def test_change_line_symbols_follow_terraform() -> None:
    assert change_line(FieldChange(field="user", new="1000")) == '+ user                   "1000"'
    assert change_line(FieldChange(field="user", old="1000")) == '- user                   "1000"'
    assert change_line(FieldChange(field="image", old="a", new="b")) == '~ image                  "a" -> "b"'
    unknown = FieldChange(field="image", new="b", old_known=False)
    assert change_line(unknown) == '~ image                  (only its hash was recorded) -> "b"'
