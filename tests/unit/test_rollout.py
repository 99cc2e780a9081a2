"""Rollout planning: replicas of a changed container replaced batch by batch (graphium.plan.rollout)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from graphium.cli.common import plan_json
from graphium.cli.output import render_plan
from graphium.plan.model import ObservedHost, Plan
from graphium.plan.payloads import DeletePayload, ReplacePayload
from graphium.plan.planner import expand, plan_apply
from graphium.records.task import Task, TaskType
from graphium.stack.models import Inventory, StackSpec
from tests.unit.test_planner import observe

HOSTS = Inventory.model_validate({"hosts": [{"@id": "h1"}, {"@id": "h2"}, {"@id": "h3"}]})


def _stack(replicas: int = 3, update: dict[str, Any] | None = None, **container: Any) -> StackSpec:
    web = {"name": "web", "image": "web:1", "replicas": replicas, **container}
    if update is not None:
        web["update"] = update
    return StackSpec.model_validate(
        {"name": "shop", "deployment": {"placementStrategy": "spread"}, "containers": [web]}
    )


def _observed(before: StackSpec) -> dict[str, ObservedHost]:
    return observe(expand(before, HOSTS, {}), [h.id for h in HOSTS.hosts])


def _rolled(update: dict[str, Any] | None = None, replicas: int = 3, **container: Any) -> Plan:
    """The plan that changes the image of a deployed stack from web:1 to web:2."""
    before = _stack(replicas, update, **container)
    after = _stack(replicas, update, **{**container, "image": "web:2"})
    return plan_apply(after, HOSTS, _observed(before), None)


def _replaces(plan: Plan) -> dict[str, Task]:
    return {
        ReplacePayload.model_validate(t.payload).container.name: t
        for t in plan.tasks
        if t.task_type is TaskType.replace
    }


def _step(task: Task) -> Any:
    step = ReplacePayload.model_validate(task.payload).rollout
    assert step is not None
    return step


def test_replicas_are_replaced_one_batch_after_another() -> None:
    plan = _rolled()
    web = _replaces(plan)
    assert sorted(web) == ["web-1", "web-2", "web-3"]
    assert web["web-1"].depends_on == []
    assert web["web-2"].depends_on == [web["web-1"].id]
    assert web["web-3"].depends_on == [web["web-2"].id]
    assert [(_step(web[n]).batch, _step(web[n]).batches) for n in sorted(web)] == [(1, 3), (2, 3), (3, 3)]
    [rollout] = plan.rollouts
    assert rollout.batches == [["web-1"], ["web-2"], ["web-3"]]
    assert (rollout.order, rollout.failure_action, rollout.parallelism) == ("stop-first", "rollback", 1)


def test_rollback_keeps_old_containers_until_every_batch_is_done() -> None:
    plan = _rolled()
    web = _replaces(plan)
    assert all(_step(t).keep_old for t in web.values())
    cleanups = [t for t in plan.tasks if t.task_type is TaskType.delete]
    assert len(cleanups) == 3
    for task in cleanups:
        payload = DeletePayload.model_validate(task.payload)
        replaced = next(t for t in web.values() if t.host_id == task.host_id)
        old = ReplacePayload.model_validate(replaced.payload).old_container_id
        assert payload.container_id == old
        assert payload.docker_name == f"shop-{replaced.payload['container']['name']}-replaced-{old[:12]}"
        assert set(task.depends_on) == {t.id for t in web.values()}  # after the whole rollout
    # each clean-up belongs to the replace action of its instance
    for action in plan.actions:
        assert len(action.task_ids) == 2


def test_parallelism_delay_and_monitor() -> None:
    plan = _rolled({"parallelism": 2, "delay": "4s", "monitor": 3}, replicas=5)
    web = _replaces(plan)
    assert plan.rollouts[0].batches == [["web-1", "web-2"], ["web-3", "web-4"], ["web-5"]]
    assert set(web["web-3"].depends_on) == {web["web-1"].id, web["web-2"].id}
    assert set(web["web-5"].depends_on) == {web["web-3"].id, web["web-4"].id}
    assert web["web-2"].depends_on == []
    assert [_step(web[n]).delay for n in sorted(web)] == [0, 0, 4, 4, 4]
    assert all(_step(t).monitor == 3 for t in web.values())
    plain = _replaces(_rolled({"parallelism": 2}, replicas=5))
    assert web["web-1"].timeout_seconds == plain["web-1"].timeout_seconds + 3
    assert web["web-3"].timeout_seconds == plain["web-3"].timeout_seconds + 7


def test_start_first_falls_back_to_stop_first_on_a_fixed_host_port() -> None:
    free = _rolled({"order": "start-first"}, ports=[{"containerPort": 80}])
    assert {_step(t).order for t in _replaces(free).values()} == {"start-first"}
    assert free.rollouts[0].notes == []

    fixed = _rolled({"order": "start-first"}, ports=[{"containerPort": 80, "hostPort": 8660}])
    assert {_step(t).order for t in _replaces(fixed).values()} == {"stop-first"}
    [note] = fixed.rollouts[0].notes
    assert "start-first is not possible" in note and "8660/tcp" in note and "every replica" in note


def test_pause_and_continue_remove_old_containers_at_once() -> None:
    for action in ("pause", "continue"):
        plan = _rolled({"failureAction": action})
        assert not any(_step(t).keep_old for t in _replaces(plan).values())
        assert not [t for t in plan.tasks if t.task_type is TaskType.delete]
        assert plan.rollouts[0].failure_action == action


def test_a_single_container_is_a_plain_replace_unless_its_policy_says_more() -> None:
    [plain] = _replaces(_rolled(replicas=1)).values()
    assert ReplacePayload.model_validate(plain.payload).rollout is None
    monitored = _rolled({"monitor": "2s"}, replicas=1)
    [task] = _replaces(monitored).values()
    assert (_step(task).monitor, _step(task).keep_old) == (2, False)
    assert [t.task_type for t in monitored.tasks] == [TaskType.replace]


def test_changing_only_the_update_policy_replaces_nothing() -> None:
    before = _stack(3)
    after = _stack(3, {"parallelism": 3, "order": "start-first", "failureAction": "pause"})
    plan = plan_apply(after, HOSTS, _observed(before), None)
    assert plan.tasks == [] and plan.rollouts == []


def test_plan_output_shows_the_policy() -> None:
    plan = _rolled({"parallelism": 2, "delay": "5s", "monitor": "10s", "order": "start-first"},
                   ports=[{"containerPort": 80, "hostPort": 8661}])  # fmt: skip
    out = io.StringIO()
    render_plan(plan, Console(file=out, width=200))
    text = out.getvalue()
    assert "rolling update of web: 2 batch(es) of up to 2 (web-1, web-2 | web-3)" in text
    assert "start-first, delay 5s, monitor 10s, on failure rollback" in text
    assert "note: start-first is not possible" in text
    [data] = plan_json(plan)["rollouts"]
    assert data == {
        "container": "web",
        "parallelism": 2,
        "delay": 5.0,
        "order": "start-first",
        "failureAction": "rollback",
        "monitor": 10.0,
        "batches": [["web-1", "web-2"], ["web-3"]],
        "notes": data["notes"],
    }
    assert len(data["notes"]) == 1
