"""The contract every TaskStore backend must pass.

A backend proves itself by subclassing :class:`TaskStoreContract` in a test module and providing
a ``store`` fixture that yields a fresh, empty store, and a ``second_store`` fixture that yields
another store object on the same data (what a second process or server would open). The tests
use only the TaskStore protocol and real time (leases of 0 s expire at once; the only sleeps are
a few milliseconds inside batches, to let concurrent writers interleave), so they hold for any
backend.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphium.errors import NotFoundError, StoreError, TransitionError
from graphium.plan.model import ObservedHost
from graphium.records.agent import AgentRecord, AgentStatus
from graphium.records.event import Event
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.records.version import KEEP_VERSIONS, StackVersion, definition_digest
from graphium.store.base import TaskStore


def make_task(task_id: str, host: str = "h1", **fields: Any) -> Task:
    fields.setdefault("stack_id", "web")
    return Task(id=task_id, task_type=TaskType.deploy, host_id=host, **fields)


def make_version(stack: str = "web", image: str = "nginx:${TAG}", **fields: Any) -> StackVersion:
    definition = {"name": stack, "containers": [{"name": "web", "image": image}]}
    fields.setdefault("placements", {"web": "h1"})
    return StackVersion(stack=stack, definition=definition, digest=definition_digest(definition), **fields)


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def parse(stamp: str | None) -> datetime:
    assert stamp is not None
    return datetime.fromisoformat(stamp)


class TaskStoreContract:
    """Behaviour shared by every TaskStore; subclasses supply the ``store`` fixture."""

    # tasks: create, read, list, count ----------------------------------------------------------
    def test_create_and_get_round_trip(self, store: TaskStore) -> None:
        task = make_task("t1", priority=7, payload={"image": "nginx", "env": {"A": "1"}}, max_retries=2)
        store.create_tasks([task])
        got = store.get_task("t1")
        assert got.dump() == task.dump()

    def test_returned_records_are_copies(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1", payload={"k": [1]})])
        got = store.get_task("t1")
        got.payload["k"].append(2)
        got.status = TaskStatus.failed
        again = store.get_task("t1")
        assert again.payload == {"k": [1]}
        assert again.status == TaskStatus.pending

    def test_unknown_task_is_not_found(self, store: TaskStore) -> None:
        with pytest.raises(NotFoundError):
            store.get_task("nope")
        with pytest.raises(NotFoundError):
            store.transition("nope", TaskStatus.running)

    def test_duplicate_ids_are_refused_and_nothing_is_created(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1")])
        with pytest.raises(StoreError, match="t1"):
            store.create_tasks([make_task("t2"), make_task("t1")])
        with pytest.raises(StoreError):
            store.create_tasks([make_task("t3"), make_task("t3")])
        assert [t.id for t in store.list_tasks()] == ["t1"]

    def test_unknown_dependency_is_refused(self, store: TaskStore) -> None:
        with pytest.raises(StoreError, match="ghost"):
            store.create_tasks([make_task("t1", depends_on=["ghost"])])
        assert store.list_tasks() == []

    def test_dependency_cycle_is_refused(self, store: TaskStore) -> None:
        tasks = [
            make_task("a", depends_on=["c"]),
            make_task("b", depends_on=["a"]),
            make_task("c", depends_on=["b"]),
        ]
        with pytest.raises(StoreError, match="cycle"):
            store.create_tasks(tasks)
        assert store.list_tasks() == []

    def test_dependencies_on_existing_tasks_are_accepted(self, store: TaskStore) -> None:
        store.create_tasks([make_task("a")])
        store.create_tasks([make_task("b", depends_on=["a"])])
        assert store.get_task("b").depends_on == ["a"]

    def test_list_filters_and_stats(self, store: TaskStore) -> None:
        store.create_tasks(
            [
                make_task("a", host="h1", stack_id="web"),
                make_task("b", host="h2", stack_id="web"),
                make_task("c", host="h1", stack_id="db"),
            ]
        )
        store.transition("b", TaskStatus.cancelled)
        assert [t.id for t in store.list_tasks(host_id="h1")] == ["a", "c"]
        assert [t.id for t in store.list_tasks(stack_id="web")] == ["a", "b"]
        assert [t.id for t in store.list_tasks(status=TaskStatus.cancelled)] == ["b"]
        assert [t.id for t in store.list_tasks(status=TaskStatus.pending, stack_id="db")] == ["c"]
        stats = store.stats()
        assert stats == {
            "total": 3,
            "pending": 2,
            "assigned": 0,
            "running": 0,
            "completed": 0,
            "failed": 0,
            "cancelled": 1,
        }
        assert store.stats(stack_id="db")["total"] == 1
        assert store.stats(stack_id="none") == dict.fromkeys(stats, 0)

    # transitions -------------------------------------------------------------------------------
    def test_transitions_stamp_timestamps_and_keep_results(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1")])
        assigned = store.transition("t1", TaskStatus.assigned, agent_id="ag")
        assert assigned.assigned_at and assigned.agent_id == "ag"
        running = store.transition("t1", TaskStatus.running, agent_id="ag")
        assert running.started_at and running.assigned_at == assigned.assigned_at
        done = store.transition("t1", TaskStatus.completed, result={"containerId": "abc"}, agent_id="ag")
        assert done.completed_at and done.result == {"containerId": "abc"}
        assert parse(done.assigned_at) <= parse(done.started_at) <= parse(done.completed_at)
        assert store.get_task("t1").dump() == done.dump()

    def test_failure_keeps_the_error(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1")])
        store.transition("t1", TaskStatus.running)
        failed = store.transition("t1", TaskStatus.failed, error="pull denied")
        assert failed.error == "pull denied" and failed.completed_at

    @pytest.mark.parametrize(
        ("path", "forbidden"),
        [
            ([], TaskStatus.completed),
            ([], TaskStatus.failed),
            ([TaskStatus.running, TaskStatus.completed], TaskStatus.pending),
            ([TaskStatus.running, TaskStatus.completed], TaskStatus.failed),
            ([TaskStatus.cancelled], TaskStatus.running),
            ([TaskStatus.running, TaskStatus.failed], TaskStatus.completed),
        ],
    )
    def test_forbidden_transitions_raise(
        self, store: TaskStore, path: list[TaskStatus], forbidden: TaskStatus
    ) -> None:
        store.create_tasks([make_task("t1")])
        for status in path:
            store.transition("t1", status)
        before = store.get_task("t1")
        with pytest.raises(TransitionError):
            store.transition("t1", forbidden)
        assert store.get_task("t1").dump() == before.dump()

    def test_expected_status_is_a_compare_and_set(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1")])
        with pytest.raises(TransitionError):
            store.transition("t1", TaskStatus.running, expected=TaskStatus.assigned)
        assert store.transition("t1", TaskStatus.running, expected=TaskStatus.pending).status == (
            TaskStatus.running
        )

    def test_retry_returns_a_failed_task_to_pending(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1")])
        store.claim("h1", "ag", 30)
        store.transition("t1", TaskStatus.failed, error="boom")
        retried = store.transition("t1", TaskStatus.pending)
        assert retried.agent_id is None and retried.lease_expires_at is None
        assert retried.assigned_at is None and retried.completed_at is None
        claimed = store.claim("h1", "ag2", 30)
        assert claimed is not None and claimed.id == "t1" and claimed.agent_id == "ag2"

    def test_another_agent_cannot_update_a_held_task(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1")])
        store.claim("h1", "ag1", 30)
        with pytest.raises(StoreError, match="ag1"):
            store.transition("t1", TaskStatus.running, agent_id="ag2")
        store.transition("t1", TaskStatus.running, agent_id="ag1")
        assert store.get_task("t1").status == TaskStatus.running

    # claiming ----------------------------------------------------------------------------------
    def test_claim_assigns_with_a_lease(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1")])
        claimed = store.claim("h1", "ag", 30)
        assert claimed is not None
        assert claimed.status == TaskStatus.assigned and claimed.agent_id == "ag" and claimed.assigned_at
        lease = parse(claimed.lease_expires_at)
        assert timedelta(seconds=25) < lease - datetime.now(UTC) <= timedelta(seconds=30)
        assert store.get_task("t1").dump() == claimed.dump()
        assert store.claim("h1", "ag", 30) is None

    def test_claim_only_takes_its_own_hosts_tasks(self, store: TaskStore) -> None:
        store.create_tasks([make_task("a", host="h2")])
        assert store.claim("h1", "ag", 30) is None
        claimed = store.claim("h2", "ag", 30)
        assert claimed is not None and claimed.id == "a"

    def test_claim_order_is_priority_then_oldest(self, store: TaskStore) -> None:
        base = datetime(2025, 1, 1, tzinfo=UTC)

        def created(minutes: int) -> str:
            return (base + timedelta(minutes=minutes)).isoformat()

        store.create_tasks(
            [
                make_task("low", priority=1, date_created=created(0)),
                make_task("new-high", priority=9, date_created=created(5)),
                make_task("old-high", priority=9, date_created=created(1)),
                make_task("b-mid", priority=5, date_created=created(2)),
                make_task("a-mid", priority=5, date_created=created(2)),
            ]
        )
        order = []
        while (claimed := store.claim("h1", "ag", 30)) is not None:
            order.append(claimed.id)
        assert order == ["old-high", "new-high", "a-mid", "b-mid", "low"]

    def test_claim_waits_for_dependencies_to_complete(self, store: TaskStore) -> None:
        store.create_tasks(
            [
                make_task("net", host="h1", priority=1),
                make_task("db", host="h2", priority=1, depends_on=["net"]),
                make_task("app", host="h1", priority=9, depends_on=["db", "net"]),
            ]
        )
        first = store.claim("h1", "ag", 30)
        assert first is not None and first.id == "net"  # app outranks it but is blocked
        assert store.claim("h2", "ag", 30) is None
        store.transition("net", TaskStatus.running)
        assert store.claim("h2", "ag", 30) is None  # running is not completed
        store.transition("net", TaskStatus.completed)
        second = store.claim("h2", "ag", 30)
        assert second is not None and second.id == "db"
        assert store.claim("h1", "ag", 30) is None
        store.transition("db", TaskStatus.running)
        store.transition("db", TaskStatus.failed, error="x")
        assert store.claim("h1", "ag", 30) is None  # a failed dependency never unblocks
        store.transition("db", TaskStatus.pending)
        store.claim("h2", "ag", 30)
        store.transition("db", TaskStatus.running)
        store.transition("db", TaskStatus.completed)
        third = store.claim("h1", "ag", 30)
        assert third is not None and third.id == "app"

    def test_claim_respects_not_before(self, store: TaskStore) -> None:
        store.create_tasks(
            [
                make_task("later", priority=9, not_before=later(3600)),
                make_task("now", priority=1, not_before=later(-1)),
            ]
        )
        claimed = store.claim("h1", "ag", 30)
        assert claimed is not None and claimed.id == "now"
        assert store.claim("h1", "ag", 30) is None

    def test_heartbeat_extends_the_lease_of_its_holder_only(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1")])
        claimed = store.claim("h1", "ag", 5)
        assert claimed is not None
        beat = store.heartbeat("t1", "ag", 60)
        assert parse(beat.lease_expires_at) > parse(claimed.lease_expires_at)
        with pytest.raises(StoreError):
            store.heartbeat("t1", "other", 60)
        store.transition("t1", TaskStatus.running, agent_id="ag")
        store.heartbeat("t1", "ag", 60)
        store.transition("t1", TaskStatus.completed, agent_id="ag")
        with pytest.raises(StoreError):
            store.heartbeat("t1", "ag", 60)

    def test_heartbeat_after_expiry_is_refused(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1", max_retries=1)])
        store.claim("h1", "ag", 0)
        with pytest.raises(StoreError):
            store.heartbeat("t1", "ag", 60)

    def test_expired_lease_requeues_with_backoff_then_fails(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1", max_retries=2)])
        store.claim("h1", "ag", 10)
        assert store.requeue_expired() == []  # not yet expired

        moment = datetime.now(UTC) + timedelta(seconds=60)
        requeued = store.requeue_expired(moment.isoformat())
        assert [t.id for t in requeued] == ["t1"]
        task = store.get_task("t1")
        assert task.status == TaskStatus.pending and task.retry_count == 1
        assert task.agent_id is None and task.lease_expires_at is None
        first_delay = parse(task.not_before) - moment
        assert first_delay > timedelta(0)
        assert store.claim("h1", "ag", 30) is None  # backing off

        # second expiry: longer backoff
        store.transition("t1", TaskStatus.assigned, expected=TaskStatus.pending, agent_id="ag")
        store.heartbeat("t1", "ag", 10)
        moment = datetime.now(UTC) + timedelta(seconds=120)
        store.requeue_expired(moment.isoformat())
        task = store.get_task("t1")
        assert task.status == TaskStatus.pending and task.retry_count == 2
        assert parse(task.not_before) - moment > first_delay

        # third expiry: retries exhausted
        store.transition("t1", TaskStatus.assigned, agent_id="ag")
        store.transition("t1", TaskStatus.running, agent_id="ag")
        store.heartbeat("t1", "ag", 10)
        store.requeue_expired((datetime.now(UTC) + timedelta(seconds=600)).isoformat())
        task = store.get_task("t1")
        assert task.status == TaskStatus.failed and task.error and task.completed_at
        assert task.retry_count == 2

    def test_claim_lazily_requeues_expired_leases(self, store: TaskStore) -> None:
        store.create_tasks([make_task("retry", max_retries=3), make_task("once", max_retries=0)])
        store.transition("retry", TaskStatus.running)  # out of the way for a moment
        first = store.claim("h1", "dead-agent", 0)
        assert first is not None and first.id == "once"
        store.transition("retry", TaskStatus.pending)
        second = store.claim("h1", "dead-agent", 0)
        assert second is not None and second.id == "retry"
        assert store.claim("h1", "ag", 30) is None  # both expired: one failed, one backing off
        assert store.get_task("once").status == TaskStatus.failed
        retry = store.get_task("retry")
        assert retry.status == TaskStatus.pending and retry.retry_count == 1 and retry.not_before

    def test_claims_never_hand_out_a_task_twice(self, store: TaskStore) -> None:
        store.create_tasks([make_task(f"t{i:02}") for i in range(20)])
        claimed = [store.claim("h1", f"ag{i % 3}", 30) for i in range(25)]
        ids = [t.id for t in claimed if t is not None]
        assert sorted(ids) == [f"t{i:02}" for i in range(20)]

    def test_claim_many_takes_up_to_limit_in_claim_order(self, store: TaskStore) -> None:
        store.create_tasks([make_task(f"t{i}", priority=i) for i in range(5)] + [make_task("x", host="h2")])
        taken = store.claim_many("h1", "ag", 30, 3)
        assert [t.id for t in taken] == ["t4", "t3", "t2"]
        assert all(t.status == TaskStatus.assigned and t.agent_id == "ag" for t in taken)
        assert all(t.lease_expires_at and t.assigned_at and t.started_at is None for t in taken)
        assert [store.get_task(t.id).dump() for t in taken] == [t.dump() for t in taken]
        assert [t.id for t in store.claim_many("h1", "ag2", 30, 10)] == ["t1", "t0"]
        assert store.claim_many("h1", "ag", 30, 10) == []
        assert store.get_task("x").status == TaskStatus.pending

    def test_claim_many_leaves_tasks_blocked_by_their_batch_mates(self, store: TaskStore) -> None:
        store.create_tasks(
            [make_task("net"), make_task("app", priority=9, depends_on=["net"]), make_task("other")]
        )
        assert sorted(t.id for t in store.claim_many("h1", "ag", 30, 10)) == ["net", "other"]
        store.transition("net", TaskStatus.running, agent_id="ag")
        store.transition("net", TaskStatus.completed, agent_id="ag")
        assert [t.id for t in store.claim_many("h1", "ag", 30, 10)] == ["app"]

    def test_claim_many_with_start_marks_the_tasks_running(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1"), make_task("t2")])
        taken = store.claim_many("h1", "ag", 30, 5, start=True)
        assert [t.status for t in taken] == [TaskStatus.running, TaskStatus.running]
        assert all(t.started_at and t.assigned_at and t.agent_id == "ag" for t in taken)
        assert store.get_task("t1").status == TaskStatus.running
        store.heartbeat("t1", "ag", 30)
        with pytest.raises(StoreError):
            store.transition("t1", TaskStatus.completed, agent_id="other-agent")
        done = store.transition("t1", TaskStatus.completed, agent_id="ag", result={"ok": True})
        assert done.completed_at and done.lease_expires_at is None

    def test_claim_many_started_tasks_are_requeued_when_their_lease_expires(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t1", max_retries=1)])
        assert len(store.claim_many("h1", "dead-agent", 0, 1, start=True)) == 1
        assert store.claim_many("h1", "ag", 30, 5, start=True) == []  # requeued, backing off
        task = store.get_task("t1")
        assert task.status == TaskStatus.pending and task.retry_count == 1 and task.started_at is None

    def test_claim_many_never_hands_out_a_task_twice(self, store: TaskStore) -> None:
        store.create_tasks([make_task(f"t{i:02}") for i in range(20)])
        ids = [t.id for i in range(10) for t in store.claim_many("h1", f"ag{i % 3}", 30, 3, start=i % 2 == 0)]
        assert sorted(ids) == [f"t{i:02}" for i in range(20)]

    # stacks ------------------------------------------------------------------------------------
    def test_stack_save_get_and_revisions(self, store: TaskStore) -> None:
        assert store.get_stack("web") is None
        first = store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying))
        assert first.revision == 1 and first.created_at and first.updated_at
        update = first.model_copy(update={"status": StackStatus.running, "progress": 100})
        second = store.save_stack(update, expected_revision=1)
        assert second.revision == 2 and second.created_at == first.created_at
        got = store.get_stack("web")
        assert got is not None and got.dump() == second.dump()
        with pytest.raises(StoreError, match="revision"):
            store.save_stack(second.model_copy(update={"status": StackStatus.deploying}), expected_revision=1)
        assert [s.id for s in store.list_stacks()] == ["web"]

    def test_forbidden_stack_transitions_raise(self, store: TaskStore) -> None:
        with pytest.raises(TransitionError):
            store.save_stack(StackRecord(id="web", name="web", status=StackStatus.running))
        store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying))
        store.save_stack(StackRecord(id="web", name="web", status=StackStatus.running))
        with pytest.raises(TransitionError):
            store.save_stack(StackRecord(id="web", name="web", status=StackStatus.error))
        stored = store.get_stack("web")
        assert stored is not None and stored.status == StackStatus.running and stored.revision == 2

    def test_delete_stack_removes_record_and_its_tasks(self, store: TaskStore) -> None:
        store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying))
        store.save_stack(StackRecord(id="db", name="db", status=StackStatus.deploying))
        store.create_tasks(
            [make_task("w1", stack_id="web"), make_task("w2", stack_id="web"), make_task("d1", stack_id="db")]
        )
        store.delete_stack("web")
        assert store.get_stack("web") is None
        assert [t.id for t in store.list_tasks()] == ["d1"]
        assert [s.id for s in store.list_stacks()] == ["db"]
        with pytest.raises(NotFoundError):
            store.delete_stack("web")

    # stack versions ----------------------------------------------------------------------------
    def test_versions_are_numbered_per_stack_and_listed_oldest_first(self, store: TaskStore) -> None:
        assert store.list_versions("web") == []
        first = store.save_version(make_version(run_id="r1"))
        second = store.save_version(make_version(image="nginx:2", run_id="r2"))
        other = store.save_version(make_version("db"))
        assert (first.number, second.number, other.number) == (1, 2, 1)
        assert first.applied_at and parse(first.applied_at) <= parse(second.applied_at)
        listed = store.list_versions("web")
        assert [v.dump() for v in listed] == [first.dump(), second.dump()]
        assert listed[0].definition["containers"][0]["image"] == "nginx:${TAG}"  # kept as written
        assert [v.number for v in store.list_versions("db")] == [1]

    def test_versions_keep_a_given_time_and_ignore_a_given_number(self, store: TaskStore) -> None:
        stored = store.save_version(make_version(number=7, applied_at="2026-01-02T03:04:05+00:00"))
        assert stored.number == 1 and stored.applied_at == "2026-01-02T03:04:05+00:00"

    def test_only_the_newest_versions_are_kept(self, store: TaskStore) -> None:
        for i in range(KEEP_VERSIONS + 3):
            store.save_version(make_version(image=f"nginx:{i}"))
        kept = store.list_versions("web")
        assert [v.number for v in kept] == list(range(4, KEEP_VERSIONS + 4))
        assert kept[-1].definition["containers"][0]["image"] == f"nginx:{KEEP_VERSIONS + 2}"
        assert store.save_version(make_version()).number == KEEP_VERSIONS + 4

    def test_versions_returned_are_copies(self, store: TaskStore) -> None:
        store.save_version(make_version())
        got = store.list_versions("web")[0]
        got.placements["web"] = "h9"
        got.definition["containers"].clear()
        again = store.list_versions("web")[0]
        assert again.placements == {"web": "h1"} and again.definition["containers"]

    def test_versions_outlive_the_stack_record(self, store: TaskStore) -> None:
        store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying))
        store.save_version(make_version())
        store.delete_stack("web")
        assert [v.number for v in store.list_versions("web")] == [1]

    def test_a_version_in_a_failed_batch_is_not_kept(self, store: TaskStore) -> None:
        with pytest.raises(StoreError), store.batch():
            store.save_version(make_version())
            store.create_tasks([make_task("t1", depends_on=["ghost"])])
        assert store.list_versions("web") == []

    # events ------------------------------------------------------------------------------------
    def test_events_get_increasing_seq_and_time(self, store: TaskStore) -> None:
        first = store.append_events([Event(type="stack_deploying", stack_id="web")])
        more = store.append_events(
            [
                Event(type="task_created", stack_id="web", task_id="t1"),
                Event(type="task_created", stack_id="db", task_id="t2"),
            ]
        )
        seqs = [e.seq for e in first + more]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > 0
        assert all(e.time for e in first + more)
        assert [e.dump() for e in store.list_events()] == [e.dump() for e in first + more]
        assert [e.task_id for e in store.list_events(after=seqs[0])] == ["t1", "t2"]
        assert [e.task_id for e in store.list_events(stack_id="db")] == ["t2"]
        assert len(store.list_events(limit=2)) == 2
        assert store.list_events(after=seqs[-1]) == []
        assert store.append_events([]) == []

    # observations ------------------------------------------------------------------------------
    def test_latest_observation_per_host(self, store: TaskStore) -> None:
        assert store.get_observation("h1") is None
        store.save_observation(ObservedHost(host="h1", networks=["web-net"]))
        store.save_observation(ObservedHost(host="h2", error="unreachable"))
        store.save_observation(ObservedHost(host="h1", networks=["web-net", "db-net"]))
        found = store.get_observation("h1")
        assert found is not None
        observed, reported_at = found
        assert observed.networks == ["web-net", "db-net"] and parse(reported_at) <= datetime.now(UTC)
        other = store.get_observation("h2")
        assert other is not None and other[0].error == "unreachable"

    # agents ------------------------------------------------------------------------------------
    def test_agent_records_replace_by_id_and_list_by_host(self, store: TaskStore) -> None:
        assert store.list_agents() == []
        old = AgentRecord(agent_id="vm2-1", host_id="vm2", version="0.1", slots=4, last_seen=later(-120))
        store.save_agents([old, AgentRecord(agent_id="vm1-7", host_id="vm1", last_seen=later(0))])
        store.save_agents([old.model_copy(update={"last_seen": later(0), "engine_version": "27.1"})])
        assert [a.agent_id for a in store.list_agents()] == ["vm1-7", "vm2-1"]
        (vm2,) = store.list_agents(host_id="vm2")
        assert vm2.engine_version == "27.1" and vm2.slots == 4
        assert vm2.status(datetime.now(UTC)) is AgentStatus.live
        assert old.status(datetime.now(UTC)) is AgentStatus.down
        store.forget_agents(["vm2-1", "nobody"])
        assert [a.agent_id for a in store.list_agents()] == ["vm1-7"]

    # batches -----------------------------------------------------------------------------------
    def test_batch_applies_everything_together(self, store: TaskStore) -> None:
        with store.batch():
            store.create_tasks([make_task("t1"), make_task("t2")])
            store.transition("t1", TaskStatus.running)
            store.append_events([Event(type="task_updated", task_id="t1")])
            assert store.get_task("t1").status == TaskStatus.running  # visible inside the batch
        assert store.get_task("t1").status == TaskStatus.running
        assert len(store.list_events()) == 1

    def test_batch_that_raises_changes_nothing(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t0")])
        with pytest.raises(RuntimeError), store.batch():
            store.create_tasks([make_task("t1")])
            store.transition("t0", TaskStatus.running)
            raise RuntimeError("abort")
        assert [t.id for t in store.list_tasks()] == ["t0"]
        assert store.get_task("t0").status == TaskStatus.pending

    def test_failed_operation_inside_a_batch_can_be_caught(self, store: TaskStore) -> None:
        store.create_tasks([make_task("t0")])
        with store.batch():
            store.transition("t0", TaskStatus.running)
            with pytest.raises(TransitionError):
                store.transition("t0", TaskStatus.assigned)
            store.transition("t0", TaskStatus.completed)
        assert store.get_task("t0").status == TaskStatus.completed

    # runs ---------------------------------------------------------------------------------------
    def test_tasks_are_listed_by_run(self, store: TaskStore) -> None:
        store.create_tasks([make_task("a", run_id="r1"), make_task("b", run_id="r2"), make_task("c")])
        assert [t.id for t in store.list_tasks(run_id="r1")] == ["a"]
        assert [t.id for t in store.list_tasks(run_id="r2", stack_id="web")] == ["b"]
        assert [t.id for t in store.list_tasks()] == ["a", "b", "c"]

    def test_assign_run_moves_stored_tasks_into_a_new_run_as_they_are(self, store: TaskStore) -> None:
        store.create_tasks([make_task("a", run_id="r1"), make_task("b", run_id="r1")])
        store.transition("a", TaskStatus.running)
        store.transition("a", TaskStatus.completed, result={"x": 1})
        moved = store.assign_run(["a"], "r2")
        assert [(t.id, t.run_id, t.status) for t in moved] == [("a", "r2", TaskStatus.completed)]
        assert store.get_task("a").result == {"x": 1}
        assert [t.id for t in store.list_tasks(run_id="r2")] == ["a"]
        assert [t.id for t in store.list_tasks(run_id="r1")] == ["b"]
        with pytest.raises(NotFoundError):
            store.assign_run(["nope"], "r2")

    # commit hooks -------------------------------------------------------------------------------
    def test_commit_hook_runs_once_per_durable_commit_with_its_events(self, store: TaskStore) -> None:
        seen: list[list[str]] = []
        remove = store.on_commit(lambda events: seen.append([e.type for e in events]))
        with store.batch():
            store.create_tasks([make_task("t1")])
            store.append_events([Event(type="one")])
            store.append_events([Event(type="two")])
            assert seen == []  # nothing is durable before the outermost batch ends
        assert seen == [["one", "two"]]
        store.transition("t1", TaskStatus.running)  # a single operation is a commit of its own
        assert seen == [["one", "two"], []]
        remove()
        store.append_events([Event(type="three")])
        assert len(seen) == 2

    def test_commit_hook_never_hears_of_a_batch_that_raised(self, store: TaskStore) -> None:
        seen: list[list[Event]] = []
        store.on_commit(seen.append)
        with pytest.raises(RuntimeError), store.batch():
            store.append_events([Event(type="undone")])
            raise RuntimeError("abort")
        assert seen == []
        store.append_events([Event(type="kept")])
        assert [[e.type for e in events] for events in seen] == [["kept"]]

    # two store objects on the same data ----------------------------------------------------------
    def test_a_second_instance_sees_every_change(self, store: TaskStore, second_store: TaskStore) -> None:
        store.create_tasks([make_task("t1"), make_task("t2")])
        claimed = second_store.claim("h1", "ag", 30)
        assert claimed is not None and store.get_task(claimed.id).dump() == claimed.dump()
        store.transition(claimed.id, TaskStatus.running, agent_id="ag")
        assert second_store.get_task(claimed.id).status == TaskStatus.running
        other = store.claim("h1", "ag2", 30)
        assert other is not None and other.id != claimed.id
        assert second_store.claim("h1", "ag3", 30) is None

    def test_event_seq_order_is_commit_order_across_instances(
        self, store: TaskStore, second_store: TaskStore
    ) -> None:
        """Readers paging with ``after`` never skip an event, however writers interleave."""
        written: list[int] = []
        read: list[int] = []
        guard = threading.Lock()
        done = threading.Event()

        def writer(target: TaskStore, name: str) -> None:
            for i in range(12):
                with target.batch():
                    stored = target.append_events([Event(type="tick", task_id=f"{name}-{i}")])
                    time.sleep(0.002)  # others append meanwhile and must wait, or commit after
                with guard:
                    written.extend(e.seq for e in stored)

        def reader() -> None:
            while True:
                finished = done.is_set()
                batch = store.list_events(after=read[-1] if read else 0)
                read.extend(e.seq for e in batch)
                if finished and not batch:
                    return

        threads = [
            threading.Thread(target=writer, args=(s, f"w{i}"))
            for i, s in enumerate([store, second_store] * 2)
        ]
        watcher = threading.Thread(target=reader)
        watcher.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        done.set()
        watcher.join(60)
        assert len(written) == 48 and len(set(written)) == 48
        assert read == sorted(written)  # in order, none skipped, none twice

    def test_events_of_a_batch_are_numbered_by_its_commit(self, store: TaskStore) -> None:
        seen: list[list[Event]] = []
        store.on_commit(seen.append)
        before = store.append_events([Event(type="before")])
        with store.batch():
            inside = store.append_events([Event(type="a"), Event(type="b")])
        assert [e.seq for e in inside] == [before[0].seq + 1, before[0].seq + 2]
        assert [[e.seq for e in events] for events in seen] == [[before[0].seq], [e.seq for e in inside]]
        assert [e.dump() for e in store.list_events(after=before[0].seq)] == [e.dump() for e in inside]

    def test_writers_appending_before_or_after_their_other_writes_do_not_block_each_other(
        self, store: TaskStore, second_store: TaskStore
    ) -> None:
        """One writer appends its event and then saves the stack, the other saves the stack and then
        appends: neither may wait on the other forever (a deadlock aborts one of them)."""
        store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying))
        failures: list[BaseException] = []

        def write(target: TaskStore, event_first: bool) -> None:
            try:
                for _ in range(5):
                    with target.batch():
                        if event_first:
                            target.append_events([Event(type="tick", stack_id="web")])
                        time.sleep(0.005)
                        current = target.get_stack("web")
                        assert current is not None
                        target.save_stack(current.model_copy(update={"progress": current.progress + 1}))
                        time.sleep(0.005)
                        if not event_first:
                            target.append_events([Event(type="tock", stack_id="web")])
            except BaseException as exc:
                failures.append(exc)

        threads = [
            threading.Thread(target=write, args=(s, first))
            for s, first in [(store, True), (second_store, False)]
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert len(store.list_events()) == 10
