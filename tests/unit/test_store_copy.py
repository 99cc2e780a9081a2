"""``copy_store``: every record of one store into an empty other one (JSON files here; the
command against PostgreSQL is in tests/integration/test_cli_database.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests.contract lives beside this package, not inside it
    sys.path.insert(0, str(ROOT))

from graphium.errors import StoreError  # noqa: E402
from graphium.plan.model import ObservedHost  # noqa: E402
from graphium.records.agent import AgentRecord  # noqa: E402
from graphium.records.event import Event  # noqa: E402
from graphium.records.stack import StackRecord, StackStatus  # noqa: E402
from graphium.records.task import TaskStatus  # noqa: E402
from graphium.records.version import VersionKind  # noqa: E402
from graphium.store.copy import copy_store  # noqa: E402
from graphium.store.json_store import JsonTaskStore  # noqa: E402
from tests.contract.store_contract import make_task, make_version  # noqa: E402


def _source(path: Path) -> JsonTaskStore:
    store = JsonTaskStore(path)
    store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying))
    store.save_stack(StackRecord(id="web", name="web", status=StackStatus.running, hosts=["h1"], run_id="r1"))
    store.save_stack(StackRecord(id="gone", name="gone", status=StackStatus.deleting))
    store.create_tasks([make_task("t0", run_id="r1"), make_task("t1", depends_on=["t0"], run_id="r1")])
    store.claim_many("h1", "ag", 30, 1, start=True)
    store.transition("t0", TaskStatus.completed, result={"containerId": "c0"}, agent_id="ag")
    for _ in range(3):
        store.save_version(make_version())
    store.save_version(make_version(kind=VersionKind.rollback, rollback_of=2))
    store.append_events(
        [Event(type="stack_deploying", stack_id="web"), Event(type="task_updated", task_id="t0")]
    )
    store.save_agents([AgentRecord(agent_id="ag", host_id="h1", last_seen="2026-01-01T00:00:00+00:00")])
    store.save_observation(ObservedHost(host="h1"))
    return store


def test_everything_is_copied(tmp_path: Path) -> None:
    source = _source(tmp_path / "a.json")
    target = JsonTaskStore(tmp_path / "b.json")
    counts = copy_store(source, target)
    assert (
        counts.stacks,
        counts.versions,
        counts.tasks,
        counts.events,
        counts.agents,
        counts.observations,
    ) == (
        2,
        4,
        2,
        2,
        1,
        1,
    )
    reopened = JsonTaskStore(tmp_path / "b.json")  # durable
    assert [(s.id, s.status, s.run_id) for s in reopened.list_stacks()] == [
        (s.id, s.status, s.run_id) for s in source.list_stacks()
    ]
    assert [t.dump() for t in reopened.list_tasks()] == [t.dump() for t in source.list_tasks()]
    assert [(v.number, v.kind, v.rollback_of) for v in reopened.list_versions("web")] == [
        (1, VersionKind.apply, None),
        (2, VersionKind.apply, None),
        (3, VersionKind.apply, None),
        (4, VersionKind.rollback, 2),
    ]
    assert [(e.type, e.time) for e in reopened.list_events()] == [
        (e.type, e.time) for e in source.list_events()
    ]
    assert reopened.list_agents() == source.list_agents()
    assert reopened.get_observation("h1") is not None


def test_a_store_in_use_is_never_a_target(tmp_path: Path) -> None:
    source = _source(tmp_path / "a.json")
    target = JsonTaskStore(tmp_path / "b.json")
    target.append_events([Event(type="something")])
    with pytest.raises(StoreError, match="the target store is not empty"):
        copy_store(source, target)
    assert [e.type for e in target.list_events()] == ["something"]
