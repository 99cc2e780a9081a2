"""The stack lifecycle from data: what a stack becomes from its record and its run's tasks.

Pure functions, so every case is a record and a list of tasks in, a decision out; the deployer
and the server's monitor are only the hands that apply it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from graphium.plan.model import DesiredContainer
from graphium.plan.payloads import DeletePayload, DeployPayload
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.run import lifecycle
from graphium.stack.models import ContainerSpec, NetworkSpec, PullPolicy

S = TaskStatus


def deploy_payload(name: str, host: str) -> dict[str, Any]:
    desired = DesiredContainer(
        stack="web",
        name=name,
        declared_name=name,
        host=host,
        spec=ContainerSpec.model_validate({"name": name, "image": "nginx:alpine"}),
        network=NetworkSpec(name="web-net"),
        pull_policy=PullPolicy.if_not_present,
        spec_hash="h",
        field_hashes={},
    )
    return DeployPayload(container=desired).dump()


def t(
    tid: str,
    status: TaskStatus,
    *,
    run: str | None = "r2",
    host: str = "h1",
    kind: TaskType = TaskType.stop,
    deps: tuple[str, ...] = (),
    error: str | None = None,
    payload: dict[str, Any] | None = None,
    result: dict[str, Any] | None = None,
) -> Task:
    return Task(
        id=tid,
        task_type=kind,
        status=status,
        host_id=host,
        stack_id="web",
        run_id=run,
        depends_on=list(deps),
        error=error,
        payload=payload or {},
        result=result,
        description=f"task {tid}",
    )


def deployed(tid: str, name: str, host: str, container_id: str) -> Task:
    """A deploy task of the run that created container ``name`` on ``host``."""
    payload = deploy_payload(name, host)
    result = {"containerId": container_id}
    return t(tid, S.completed, host=host, kind=TaskType.deploy, payload=payload, result=result)


def record(status: StackStatus = StackStatus.deploying, run: str | None = "r2", **extra: Any) -> StackRecord:
    return StackRecord(id="web", name="web", status=status, run_id=run, **extra)


# the current run ----------------------------------------------------------------------------------
def test_an_earlier_runs_failures_do_not_fail_a_later_run() -> None:
    tasks = [
        t("old-1", S.failed, run="r1", error="boom"),
        t("old-2", S.cancelled, run="r1", error="not started"),
        t("new-1", S.completed),
        t("new-2", S.completed),
    ]
    rec = record(progress=50)
    run = lifecycle.current_run(rec, tasks)
    assert [x.id for x in run] == ["new-1", "new-2"]
    decision = lifecycle.decide(rec, run, {x.id: x for x in tasks})
    assert decision.settled and decision.record is not None and decision.event is not None
    assert decision.record.status is StackStatus.running and decision.record.progress == 100
    assert decision.record.error is None and decision.cancel == {}
    assert decision.event.type == "stack_running" and decision.event.run_id == "r2"


def test_progress_counts_the_current_run_only() -> None:
    tasks = [t(f"old-{i}", S.completed, run="r1") for i in range(6)]
    tasks += [t("a", S.completed), t("b", S.running), t("c", S.pending), t("d", S.failed, error="x")]
    rec = record()
    decision = lifecycle.decide(rec, lifecycle.current_run(rec, tasks))
    assert not decision.settled
    assert decision.record is not None and decision.record.progress == 50
    unchanged = lifecycle.decide(rec.model_copy(update={"progress": 50}), lifecycle.current_run(rec, tasks))
    assert unchanged.record is None  # nothing to write


def test_a_record_without_a_run_id_takes_every_task_but_a_deletions_builds() -> None:
    tasks = [t("d", S.cancelled, run=None, kind=TaskType.deploy), t("rm", S.completed, run=None)]
    assert len(lifecycle.current_run(record(run=None), tasks)) == 2
    deleting = record(StackStatus.deleting, run=None)
    assert [x.id for x in lifecycle.current_run(deleting, tasks)] == ["rm"]
    assert lifecycle.decide(deleting, lifecycle.current_run(deleting, tasks)).delete


# blocked tasks ------------------------------------------------------------------------------------
def test_pending_tasks_behind_a_failure_are_cancelled_transitively() -> None:
    tasks = [
        t("a", S.failed, error="pull denied"),
        t("b", S.pending, deps=("a",)),
        t("c", S.pending, deps=("b",)),
        t("d", S.pending, deps=("gone",)),
        t("e", S.pending),
        t("f", S.pending, deps=("old",)),
    ]
    others = {"old": t("old", S.completed, run="r1")}
    assert lifecycle.blocked(tasks, others) == {
        "b": "not started: dependency a did not complete",
        "c": "not started: dependency b did not complete",
        "d": "not started: dependency gone did not complete",
    }


def test_a_run_that_can_never_finish_settles_failed_in_one_look() -> None:
    tasks = [t("a", S.failed, error="pull denied"), t("b", S.pending, deps=("a",))]
    decision = lifecycle.decide(record(progress=40), tasks)
    assert decision.cancel == {"b": "not started: dependency a did not complete"}
    assert decision.settled and decision.record is not None
    assert decision.record.status is StackStatus.error and decision.record.phase == "failed"
    assert decision.record.progress == 40  # a failed run keeps the progress it made
    assert decision.record.error == "h1: task a: pull denied; 1 task(s) not started"


# failure summary ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ([t("a", S.completed)], []),
        (
            [t("a", S.failed, host="h2", error="x"), t("b", S.failed, host="h1", error="y")],
            ["h1: task b: y", "h2: task a: x"],
        ),
        (
            [t("a", S.failed, error="x"), t("b", S.cancelled), t("c", S.cancelled)],
            ["h1: task a: x", "2 task(s) not started"],
        ),
    ],
)
def test_failure_lines(tasks: list[Task], expected: list[str]) -> None:
    assert lifecycle.failure_lines(tasks) == expected
    assert lifecycle.failure_summary(tasks) == ("; ".join(expected) or "failed")


# placements and hosts -----------------------------------------------------------------------------
def test_placements_from_task_results() -> None:
    stored = {
        "db": {"hostId": "h1", "containerId": "c-db", "dockerName": "web-db"},
        "old": {"hostId": "h2", "containerId": "c-old", "dockerName": "web-old"},
    }
    tasks = [
        deployed("d1", "app", "h2", "c-app"),
        t("d2", S.failed, kind=TaskType.deploy, payload=deploy_payload("api", "h1"), error="x"),
        t(
            "rm",
            S.completed,
            host="h2",
            kind=TaskType.delete,
            payload=DeletePayload(docker_name="web-old").dump(),
        ),
    ]
    assert lifecycle.placements(stored, tasks) == {
        "db": stored["db"],
        "app": {"hostId": "h2", "containerId": "c-app", "dockerName": "web-app"},
    }
    desired = {"app": ("h2", "web-app"), "db": ("h3", "web-db"), "api": ("h1", "web-api")}
    assert lifecycle.placements(stored, tasks, desired) == {
        "app": {"hostId": "h2", "containerId": "c-app", "dockerName": "web-app"},
        "db": {"hostId": "h3", "containerId": None, "dockerName": "web-db"},  # moved: not created yet
        "api": {"hostId": "h1", "containerId": None, "dockerName": "web-api"},
    }
    network = t("net", S.completed, host="h4", kind=TaskType.ensure_network)
    assert lifecycle.stack_hosts(lifecycle.placements(stored, tasks), [*tasks, network]) == ["h1", "h2", "h4"]


def test_a_successful_deploy_writes_placements_and_hosts_back() -> None:
    tasks = [deployed("d1", "app", "h2", "c1")]
    rec = record(runner_lease_until="2999-01-01T00:00:00+00:00", error="an old failure")
    decision = lifecycle.settle(rec, tasks, desired={"app": ("h2", "web-app")})
    assert decision.record is not None
    assert decision.record.placements == {
        "app": {"hostId": "h2", "containerId": "c1", "dockerName": "web-app"}
    }
    assert decision.record.hosts == ["h2"] and decision.record.error is None
    assert decision.record.runner_lease_until is None  # the run is over: the stack is free


# destroys -----------------------------------------------------------------------------------------
def test_a_destroy_that_completed_deletes_the_stack_and_one_that_failed_says_why() -> None:
    deleting = record(StackStatus.deleting)
    done = lifecycle.settle(deleting, [t("rm", S.completed)])
    assert done.delete and done.record is None and done.event is not None
    assert done.event.type == "stack_deleted"
    failed = lifecycle.settle(deleting, [t("rm", S.failed, error="in use")])
    assert not failed.delete and failed.record is not None and failed.event is not None
    assert failed.record.status is StackStatus.error and failed.record.phase == "delete-failed"
    assert failed.record.error == "h1: task rm: in use" and failed.event.type == "stack_failed"


def test_open_builds_are_pending_tasks_that_build_up() -> None:
    tasks = [
        t("d", S.pending, kind=TaskType.deploy),
        t("n", S.pending, kind=TaskType.ensure_network),
        t("s", S.pending, kind=TaskType.stop),
        t("r", S.running, kind=TaskType.deploy),
    ]
    assert [x.id for x in lifecycle.open_builds(tasks)] == ["d", "n"]


# leases -------------------------------------------------------------------------------------------
def test_runner_lease() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    held = record(runner_lease_until=lifecycle.lease_end(now))
    assert lifecycle.lease_live(held, now)
    assert not lifecycle.lease_live(held, now + timedelta(seconds=lifecycle.RUNNER_LEASE_SECONDS + 1))
    assert not lifecycle.lease_live(record(), now)
    assert lifecycle.new_run_id() != lifecycle.new_run_id()
