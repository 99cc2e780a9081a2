"""What a failing batch does to its rollout (graphium.run.rollouts), over planned tasks.

The scripted executor of the runner's tests stands in for hosts (the runner's and the rollouts'
own logic needs no engine; tests/integration/test_rolling.py runs the same on the lab).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graphium.plan.model import Plan
from graphium.plan.payloads import ReplacePayload, RestorePayload
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.run import lifecycle, rollouts
from graphium.run.events import EventBus
from graphium.run.runner import Runner, RunResult
from graphium.stack.models import Host
from graphium.store.json_store import JsonTaskStore
from tests.unit.test_rollout import _rolled
from tests.unit.test_runner import ScriptedExecutor

HOSTS = {h: Host.model_validate({"@id": h}) for h in ("h1", "h2", "h3")}


class Swapping(ScriptedExecutor):
    """A replace "keeps" its old container (as the engine does for a rollback-able rollout)."""

    async def run(self, task: Task, host: Host) -> dict[str, Any]:
        result = await super().run(task, host)
        if task.task_type is TaskType.replace:
            payload = ReplacePayload.model_validate(task.payload)
            return {"containerId": f"new-{task.host_id}", "keptOld": payload.old_container_id}
        if task.task_type is TaskType.restore:
            return {"containerId": RestorePayload.model_validate(task.payload).old_container_id}
        return result


def _by_instance(plan: Plan) -> dict[str, Task]:
    return {
        ReplacePayload.model_validate(t.payload).container.name: t
        for t in plan.tasks
        if t.task_type is TaskType.replace
    }


async def _run(tmp_path: Path, plan: Plan, failing: str) -> tuple[JsonTaskStore, RunResult, Swapping]:
    store = JsonTaskStore(tmp_path / "state.json")
    tasks = [t.model_copy(update={"stack_id": "shop", "run_id": "run-1"}) for t in plan.tasks]
    store.create_tasks(tasks)
    executor = Swapping(fail={_by_instance(plan)[failing].id})
    result = await rollouts.run(Runner(store, executor, HOSTS), store, EventBus(store), tasks)
    return store, result, executor


async def test_rollback_restores_the_batches_already_replaced(tmp_path: Path) -> None:
    plan = _rolled()
    web = _by_instance(plan)
    store, result, executor = await _run(tmp_path, plan, "web-2")
    assert not result.ok
    assert result.tasks[web["web-1"].id].status is TaskStatus.completed
    assert result.tasks[web["web-3"].id].status is TaskStatus.cancelled
    assert web["web-3"].id not in executor.started
    assert not [t for t in executor.started if store.get_task(t).task_type is TaskType.delete]
    [restore] = [t for t in result.tasks.values() if t.task_type is TaskType.restore]
    assert restore.status is TaskStatus.completed and restore.host_id == web["web-1"].host_id
    assert restore.run_id == "run-1" and store.get_task(restore.id).status is TaskStatus.completed
    payload = RestorePayload.model_validate(restore.payload)
    old = ReplacePayload.model_validate(web["web-1"].payload).old_container_id
    assert (payload.name, payload.docker_name, payload.old_container_id) == ("web-1", "shop-web-1", old)
    [note] = result.notes
    assert note.startswith("rolling update of web failed at batch 2 of 3 (web-2 on h")
    assert "rolled back: every replica runs its previous container again" in note

    # the stack's record names the old container again
    record = StackRecord(id="shop", name="shop", status=StackStatus.deploying, run_id="run-1")
    settled = lifecycle.settle(record, list(result.tasks.values()))
    assert settled.record is not None and settled.record.status is StackStatus.error
    assert settled.record.placements["web-1"]["containerId"] == old


async def test_pause_stops_at_the_failing_batch(tmp_path: Path) -> None:
    plan = _rolled({"failureAction": "pause"})
    web = _by_instance(plan)
    _, result, executor = await _run(tmp_path, plan, "web-2")
    assert web["web-3"].id not in executor.started
    assert not [t for t in result.tasks.values() if t.task_type is TaskType.restore]
    [note] = result.notes
    assert "failureAction pause: updated web-1 on" in note
    assert "apply again to resume the rollout" in note


async def test_continue_goes_on_past_a_failing_batch(tmp_path: Path) -> None:
    plan = _rolled({"failureAction": "continue"})
    web = _by_instance(plan)
    store, result, executor = await _run(tmp_path, plan, "web-2")
    assert result.tasks[web["web-3"].id].status is TaskStatus.completed
    assert executor.started.index(web["web-3"].id) > executor.finished.index(web["web-2"].id)
    assert not result.ok and [t.id for t in result.failed] == [web["web-2"].id]
    [note] = result.notes
    assert "failureAction continue" in note and "kept the previous version: web-2 on" in note
    # agents are handed the next batch by the same rule, and the server's monitor never cancels it
    failed = store.get_task(web["web-2"].id)
    assert failed.passes
    pending = web["web-3"].model_copy(update={"status": TaskStatus.pending})
    assert lifecycle.blocked([pending], {failed.id: failed}) == {}


def test_only_a_continuing_rollout_lets_a_failure_pass() -> None:
    for action, passes in (("continue", True), ("pause", False), ("rollback", False)):
        task = _by_instance(_rolled({"failureAction": action}))["web-1"]
        assert task.model_copy(update={"status": TaskStatus.failed}).passes is passes
        assert task.model_copy(update={"status": TaskStatus.cancelled}).passes is False
        assert task.model_copy(update={"status": TaskStatus.completed}).passes is True
