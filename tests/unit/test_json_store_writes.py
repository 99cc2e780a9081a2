"""What the JSON store writes for a save that keeps the stack's spec: a small journal line that a
fresh instance (another process, or the same file after a crash) replays into the full record."""

from __future__ import annotations

import json
from pathlib import Path

from graphium.records.stack import StackRecord, StackStatus
from graphium.store.json_store import JsonTaskStore

SPEC = {
    "name": "shop",
    "containers": [{"name": f"c{i}", "image": "web:1", "env": {"I": str(i)}} for i in range(30)],
}


def _journal_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (path.parent / (path.name + ".journal")).read_text().splitlines()]


def test_a_progress_save_journals_only_the_fields_that_changed(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = JsonTaskStore(path)
    store.save_stack(StackRecord(id="shop", name="shop", status=StackStatus.deploying, spec=SPEC))
    current = store.get_stack("shop")
    assert current is not None
    store.save_stack(current.model_copy(update={"progress": 40, "phase": "applying"}))
    *_, last = _journal_lines(path)
    [[kind, patch]] = last["ops"]  # type: ignore[misc]
    assert kind == "stack~" and "spec" not in patch and patch["progress"] == 40
    assert "placements" not in patch and "name" not in patch  # unchanged: left out
    assert len(json.dumps(last)) < len(json.dumps(SPEC))
    reopened = JsonTaskStore(path).get_stack("shop")
    assert reopened is not None
    assert (reopened.spec, reopened.progress, reopened.phase, reopened.revision) == (SPEC, 40, "applying", 2)


def test_a_changed_spec_is_written_whole_and_patches_replay_over_it(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = JsonTaskStore(path)
    store.save_stack(StackRecord(id="shop", name="shop", status=StackStatus.deploying, spec=SPEC))
    other = JsonTaskStore(path)  # another process reading the same file
    new_spec = {**SPEC, "name": "shop-v2"}
    first = store.get_stack("shop")
    assert first is not None
    store.save_stack(first.model_copy(update={"spec": new_spec, "status": StackStatus.running}))
    second = store.get_stack("shop")
    assert second is not None
    store.save_stack(second.model_copy(update={"progress": 100}))
    kinds = [op[0] for line in _journal_lines(path) for op in line["ops"]]  # type: ignore[attr-defined]
    assert kinds == ["stack", "stack", "stack~"]
    seen = other.get_stack("shop")  # caught up from the journal
    assert seen is not None and (seen.spec, seen.progress, seen.status) == (
        new_spec,
        100,
        StackStatus.running,
    )
    store.compact()
    again = JsonTaskStore(path).get_stack("shop")
    assert again is not None and again.spec == new_spec and again.progress == 100


def test_a_returned_record_is_a_copy_the_store_does_not_share(tmp_path: Path) -> None:
    store = JsonTaskStore(tmp_path / "state.json")
    store.save_stack(StackRecord(id="shop", name="shop", status=StackStatus.deploying, spec=SPEC))
    current = store.get_stack("shop")
    assert current is not None
    saved = store.save_stack(current.model_copy(update={"progress": 10}))
    saved.spec["containers"].clear()
    current.spec["name"] = "changed by the caller"
    kept = store.get_stack("shop")
    assert kept is not None and kept.spec == SPEC


def test_a_status_change_journals_the_task_without_its_payload(tmp_path: Path) -> None:
    from graphium.records.task import Task, TaskStatus, TaskType

    path = tmp_path / "state.json"
    store = JsonTaskStore(path)
    payload = {"container": {"spec": SPEC}}
    store.create_tasks([Task(id="t1", task_type=TaskType.deploy, host_id="h", payload=payload)])
    store.transition("t1", TaskStatus.running)
    store.transition("t1", TaskStatus.completed, result={"containerId": "abc"})
    lines = _journal_lines(path)
    kinds = [op[0] for line in lines for op in line["ops"]]  # type: ignore[attr-defined]
    assert kinds == ["task", "task~", "task~"]
    assert all("payload" not in op[1] for line in lines[1:] for op in line["ops"])  # type: ignore[attr-defined]
    reopened = JsonTaskStore(path).get_task("t1")
    assert (reopened.payload, reopened.status, reopened.result) == (
        payload,
        TaskStatus.completed,
        {"containerId": "abc"},
    )
