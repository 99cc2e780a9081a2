"""The runner's DAG walk: ordering, bounded parallelism, failure handling, timeouts.

A scripted executor stands in for hosts here: this is the runner's own logic, which needs no
engine; the same runner drives real engines in tests/integration.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from graphium.errors import ExecutionError
from graphium.plan.model import ObservedHost
from graphium.records.task import Task, TaskStatus, TaskType
from graphium.run.runner import Runner
from graphium.stack.models import Host
from graphium.store.json_store import JsonTaskStore

HOSTS = {h: Host.model_validate({"@id": h}) for h in ("a", "b")}


class ScriptedExecutor:
    """Runs each task by sleeping; fails the ids it is told to; records order and concurrency."""

    def __init__(
        self, delay: float = 0.02, fail: set[str] = frozenset(), hang: set[str] = frozenset()
    ) -> None:
        self.delay, self.fail, self.hang = delay, fail, hang
        self.started: list[str] = []
        self.finished: list[str] = []
        self.running: dict[str, int] = {}
        self.peak_total = 0
        self.peak_per_host: dict[str, int] = {}

    async def observe(self, hosts: list[Host], stack: str | None) -> dict[str, ObservedHost]:
        return {h.id: ObservedHost(host=h.id) for h in hosts}

    async def run(self, task: Task, host: Host) -> dict[str, Any]:
        self.started.append(task.id)
        self.running[host.id] = self.running.get(host.id, 0) + 1
        self.peak_total = max(self.peak_total, sum(self.running.values()))
        self.peak_per_host[host.id] = max(self.peak_per_host.get(host.id, 0), self.running[host.id])
        try:
            await asyncio.sleep(3600 if task.id in self.hang else self.delay)
            if task.id in self.fail:
                raise ExecutionError("boom", host=host.id, task=task.id)
            return {"ran": task.id}
        finally:
            self.running[host.id] -= 1
            self.finished.append(task.id)

    async def close(self) -> None:
        return None


def task(tid: str, host: str = "a", deps: tuple[str, ...] = (), timeout: float = 30.0) -> Task:
    return Task(
        id=tid,
        task_type=TaskType.deploy,
        host_id=host,
        depends_on=list(deps),
        timeout_seconds=timeout,
        description=f"task {tid}",
    )


async def run(tmp_path: Path, tasks: list[Task], executor: ScriptedExecutor, **kw: Any) -> Any:
    store = JsonTaskStore(tmp_path / "state.json")
    store.create_tasks(tasks)
    result = await Runner(store, executor, HOSTS, **kw).run(tasks)
    return store, result


async def test_dependencies_run_first_also_across_hosts(tmp_path: Path) -> None:
    tasks = [
        task("net"),
        task("db", "b", ("net",)),
        task("app", "a", ("db",)),
        task("web", "b", ("app", "db")),
    ]
    ex = ScriptedExecutor()
    store, result = await run(tmp_path, tasks, ex)
    assert result.ok
    assert ex.started.index("db") > ex.finished.index("net")
    assert ex.started.index("app") > ex.finished.index("db")
    assert ex.started.index("web") > ex.finished.index("app")
    assert all(store.get_task(t.id).status is TaskStatus.completed for t in tasks)
    assert store.get_task("app").result == {"ran": "app"}


@pytest.mark.parametrize(("parallelism", "per_host"), [(1, 8), (3, 2), (10, 1)])
async def test_parallelism_is_bounded_globally_and_per_host(
    tmp_path: Path, parallelism: int, per_host: int
) -> None:
    tasks = [task(f"t{i}", "ab"[i % 2]) for i in range(12)]
    ex = ScriptedExecutor()
    _, result = await run(tmp_path, tasks, ex, parallelism=parallelism, per_host=per_host)
    assert result.ok
    assert ex.peak_total <= parallelism and max(ex.peak_per_host.values()) <= per_host
    assert ex.peak_total == min(parallelism, 2 * per_host)  # and the bound is actually used


async def test_by_default_only_each_host_is_bounded_so_more_hosts_do_more_at_once(tmp_path: Path) -> None:
    hosts = {f"h{i}": Host.model_validate({"@id": f"h{i}"}) for i in range(6)}
    tasks = [task(f"t{i}", f"h{i % 6}") for i in range(36)]
    ex = ScriptedExecutor(delay=0.05)
    store = JsonTaskStore(tmp_path / "state.json")
    store.create_tasks(tasks)
    result = await Runner(store, ex, hosts, per_host=4).run(tasks)
    assert result.ok
    assert max(ex.peak_per_host.values()) <= 4
    assert ex.peak_total == 6 * 4  # 24 at once: no global cap of 10 any more


async def test_failure_stops_new_tasks_and_cancels_the_rest(tmp_path: Path) -> None:
    tasks = [
        task("bad", "a"),
        task("slow", "b"),
        task("after-bad", "a", ("bad",)),
        task("after-slow", "b", ("slow",)),
    ]
    ex = ScriptedExecutor(fail={"bad"})
    ex.delay = 0.05
    store, result = await run(tmp_path, tasks, ex)
    assert not result.ok
    assert [t.id for t in result.failed] == ["bad"] and "boom" in (result.failed[0].error or "")
    assert store.get_task("slow").status is TaskStatus.completed  # in flight: finished, not abandoned
    assert {t.id for t in result.cancelled} == {"after-bad", "after-slow"}
    assert "bad" in (store.get_task("after-slow").error or "")
    assert "it needs task bad (task bad) on a" in (store.get_task("after-bad").error or "")
    assert "needs" not in (
        store.get_task("after-slow").error or ""
    )  # stopped by the failure, not waiting on it
    assert "after-bad" not in ex.started and "after-slow" not in ex.started
    assert result.failures_by_host() == {"a": result.failed}


async def test_a_cancelled_dependant_names_its_own_failed_dependency(tmp_path: Path) -> None:
    tasks = [
        task("net-a", "a"),
        task("net-b", "b"),
        task("web-a", "a", ("net-a",)),
        task("web-b", "b", ("net-b",)),
        task("lb", "b", ("web-b",)),
    ]
    store, result = await run(tmp_path, tasks, ScriptedExecutor(fail={"net-b"}))
    assert {t.id for t in result.cancelled} == {"web-a", "web-b", "lb"}
    assert "it needs task net-b (task net-b) on b" in (store.get_task("lb").error or "")  # transitively
    assert "it needs task net-b" in (store.get_task("web-b").error or "")
    assert "needs" not in (store.get_task("web-a").error or "") and "net-b" in (
        store.get_task("web-a").error or ""
    )


async def test_timeout_fails_the_task_instead_of_hanging(tmp_path: Path) -> None:
    ex = ScriptedExecutor(hang={"stuck"})
    store, result = await run(tmp_path, [task("stuck", timeout=0.2), task("next", deps=("stuck",))], ex)
    assert [t.id for t in result.failed] == ["stuck"]
    assert "timed out after 0.2 s" in (store.get_task("stuck").error or "")
    assert store.get_task("next").status is TaskStatus.cancelled


async def test_resuming_skips_what_already_completed(tmp_path: Path) -> None:
    store = JsonTaskStore(tmp_path / "state.json")
    tasks = [task("one"), task("two", deps=("one",))]
    store.create_tasks(tasks)
    store.transition("one", TaskStatus.running)
    store.transition("one", TaskStatus.completed, result={"ran": "earlier"})
    ex = ScriptedExecutor()
    result = await Runner(store, ex, HOSTS).run([store.get_task("one"), store.get_task("two")])
    assert result.ok and ex.started == ["two"]


async def test_unknown_host_fails_cleanly(tmp_path: Path) -> None:
    _, result = await run(tmp_path, [task("x", "nowhere")], ScriptedExecutor())
    assert "nowhere is not in the inventory" in (result.failed[0].error or "")
