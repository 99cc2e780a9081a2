"""JsonTaskStore: the store contract, plus durability, multi-process safety and file handling."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # tests.contract lives beside this package, not inside it
    sys.path.insert(0, str(ROOT))

from graphium.errors import StoreError  # noqa: E402
from graphium.records.event import Event  # noqa: E402
from graphium.records.stack import StackRecord, StackStatus  # noqa: E402
from graphium.records.task import TaskStatus  # noqa: E402
from graphium.store.base import TaskStore  # noqa: E402
from graphium.store.json_store import JsonTaskStore  # noqa: E402
from tests.contract.store_contract import TaskStoreContract, make_task, make_version  # noqa: E402


class TestJsonStoreContract(TaskStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[TaskStore]:
        with JsonTaskStore(tmp_path / "state.json") as store:
            yield store

    @pytest.fixture
    def second_store(self, store: TaskStore, tmp_path: Path) -> Iterator[TaskStore]:
        with JsonTaskStore(tmp_path / "state.json") as second:
            yield second


class TestJsonStoreContractWithConstantCompaction(TaskStoreContract):
    """The same contract while every write also rewrites the main file."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[TaskStore]:
        with JsonTaskStore(tmp_path / "state.json", compact_bytes=1) as store:
            yield store

    @pytest.fixture
    def second_store(self, store: TaskStore, tmp_path: Path) -> Iterator[TaskStore]:
        with JsonTaskStore(tmp_path / "state.json", compact_bytes=1) as second:
            yield second


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".graphium" / "state.json"


def _populate(store: JsonTaskStore) -> None:
    store.save_stack(StackRecord(id="web", name="web", status=StackStatus.deploying))
    store.create_tasks([make_task(f"t{i}", max_retries=1) for i in range(5)])
    store.claim("h1", "ag", 30)
    store.transition("t0", TaskStatus.running, agent_id="ag")
    store.transition("t0", TaskStatus.completed, result={"id": "c0"})
    store.append_events([Event(type="task_updated", task_id="t0")])


def _snapshot(store: JsonTaskStore) -> dict[str, Any]:
    return {
        "tasks": [t.dump() for t in store.list_tasks()],
        "stacks": [s.dump() for s in store.list_stacks()],
        "events": [e.dump() for e in store.list_events()],
    }


# persistence -------------------------------------------------------------------------------------
def test_creates_directory_and_files(path: Path) -> None:
    JsonTaskStore(path).close()
    assert path.exists() and path.with_name("state.json.journal").exists()


def test_reopen_sees_every_change(path: Path) -> None:
    with JsonTaskStore(path) as store:
        _populate(store)
        before = _snapshot(store)
    with JsonTaskStore(path) as again:
        assert _snapshot(again) == before


def test_compaction_folds_the_journal_into_a_tinydb_file(path: Path) -> None:
    with JsonTaskStore(path) as store:
        _populate(store)
        before = _snapshot(store)
        store.compact()
    assert path.with_name("state.json.journal").stat().st_size == 0
    from tinydb import TinyDB, where

    with TinyDB(str(path)) as db:  # the main file is a plain TinyDB database
        assert len(db.table("tasks")) == 5
        assert db.table("tasks").search(where("status") == "completed")[0]["id"] == "t0"
        assert db.table("stacks").all()[0]["revision"] == 1
    with JsonTaskStore(path) as again:
        assert _snapshot(again) == before
        assert again.append_events([Event(type="x")])[0].seq == 2  # seq survives compaction


def test_versions_survive_reopening_and_compaction(path: Path) -> None:
    with JsonTaskStore(path) as store:
        for i in range(3):
            store.save_version(make_version(image=f"nginx:{i}"))
        store.save_version(make_version("db"))
        before = [v.dump() for s in ("web", "db") for v in store.list_versions(s)]
    with JsonTaskStore(path) as again:  # replayed from the journal
        assert [v.dump() for s in ("web", "db") for v in again.list_versions(s)] == before
        again.compact()
    with JsonTaskStore(path) as third:  # restored from the main file
        assert [v.dump() for s in ("web", "db") for v in third.list_versions(s)] == before
        assert third.save_version(make_version()).number == 4


def test_claim_many_is_one_journal_line_and_survives_reopening(path: Path) -> None:
    journal = path.with_name("state.json.journal")
    with JsonTaskStore(path) as store:
        store.create_tasks([make_task(f"t{i}") for i in range(10)])
        lines = journal.read_bytes().count(b"\n")
        taken = store.claim_many("h1", "ag", 30, 8, start=True)
        assert len(taken) == 8
        assert journal.read_bytes().count(b"\n") == lines + 1
    with JsonTaskStore(path) as again:
        assert [again.get_task(t.id).dump() for t in taken] == [t.dump() for t in taken]
        assert [t.id for t in again.claim_many("h1", "ag", 30, 8)] == ["t8", "t9"]


def test_automatic_compaction_keeps_the_journal_small(path: Path) -> None:
    with JsonTaskStore(path, compact_bytes=2_000) as store:
        store.create_tasks([make_task(f"t{i}") for i in range(50)])
        for i in range(50):
            store.transition(f"t{i}", TaskStatus.running)
        journal = path.with_name("state.json.journal").stat().st_size
        assert journal < max(2_000, path.stat().st_size) + 1_000
        before = _snapshot(store)
    with JsonTaskStore(path) as again:
        assert _snapshot(again) == before


def test_crash_between_compaction_and_journal_truncation_replays_nothing_twice(path: Path) -> None:
    journal = path.with_name("state.json.journal")
    with JsonTaskStore(path) as store:
        _populate(store)
        before = _snapshot(store)
        stale = journal.read_bytes()
        store.compact()
    journal.write_bytes(stale)  # as if the process died right after renaming the main file
    with JsonTaskStore(path) as again:
        assert _snapshot(again) == before
        again.transition("t1", TaskStatus.running, agent_id="ag")
    with JsonTaskStore(path) as third:
        assert third.get_task("t1").status == TaskStatus.running
        assert len(third.list_events()) == 1


def test_event_retention_is_bounded(path: Path) -> None:
    with JsonTaskStore(path, max_events=5) as store:
        for i in range(8):
            store.append_events([Event(type="e", data={"i": i})])
        assert [e.seq for e in store.list_events()] == [4, 5, 6, 7, 8]
        store.compact()
    with JsonTaskStore(path, max_events=5) as again:
        assert [e.seq for e in again.list_events()] == [4, 5, 6, 7, 8]
        assert again.append_events([Event(type="e")])[0].seq == 9


# damaged files -----------------------------------------------------------------------------------
def test_torn_journal_tail_is_ignored_then_cut_off(path: Path) -> None:
    journal = path.with_name("state.json.journal")
    with JsonTaskStore(path) as store:
        _populate(store)
        before = _snapshot(store)
    with journal.open("ab") as fh:
        fh.write(b'{"g":0,"ops":[["task",{"id":"half')  # a writer killed mid-line
    with JsonTaskStore(path) as store:
        assert _snapshot(store) == before
        store.transition("t1", TaskStatus.running, agent_id="ag")
    assert b"half" not in journal.read_bytes()
    with JsonTaskStore(path) as store:
        assert store.get_task("t1").status == TaskStatus.running


def test_garbage_tail_after_power_loss_is_ignored(path: Path) -> None:
    journal = path.with_name("state.json.journal")
    with JsonTaskStore(path) as store:
        _populate(store)
        before = _snapshot(store)
    with journal.open("ab") as fh:
        fh.write(b"\0" * 100 + b"\n" + b"\0" * 10)
    with JsonTaskStore(path) as store:
        assert _snapshot(store) == before


def test_corruption_inside_the_journal_is_an_error(path: Path) -> None:
    journal = path.with_name("state.json.journal")
    with JsonTaskStore(path) as store:
        _populate(store)
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1] = b"{not json\n"
    journal.write_bytes(b"".join(lines))
    with pytest.raises(StoreError, match=r"state\.json\.journal"):
        JsonTaskStore(path)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[1, 2]",
        b'{"tasks": {"1": {"id": 3}}}',
        b'{"meta": {"1": {"format": 99}}}',
        b"\xff\xfe",
    ],
)
def test_unreadable_main_file_is_a_store_error_naming_it(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"state\.json"):
        JsonTaskStore(path)


def test_main_file_corrupted_under_a_running_store(path: Path) -> None:
    with JsonTaskStore(path) as store:
        _populate(store)
        store.compact()
        path.write_text("{broken")
        with pytest.raises(StoreError, match=r"state\.json"):
            store.list_tasks()


def test_closed_store_refuses_operations(path: Path) -> None:
    store = JsonTaskStore(path)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_tasks()


# several instances, threads and processes --------------------------------------------------------
def test_instances_see_each_others_changes_incrementally(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with JsonTaskStore(path) as a, JsonTaskStore(path) as b:
        loads: list[str] = []
        original = JsonTaskStore._load

        def counting_load(self: JsonTaskStore) -> None:
            loads.append(repr(self))
            original(self)

        monkeypatch.setattr(JsonTaskStore, "_load", counting_load)
        a.create_tasks([make_task("t1"), make_task("t2")])
        claimed = b.claim("h1", "ag-b", 30)
        assert claimed is not None
        assert a.get_task(claimed.id).agent_id == "ag-b"
        assert a.claim("h1", "ag-a", 30) is not None
        assert b.claim("h1", "ag-b", 30) is None
        assert loads == []  # journal tail only, no full reload
        b.compact()
        assert a.stats()["assigned"] == 2
        assert len(loads) == 1  # the main file changed: one reload


def test_threads_sharing_one_store_never_claim_a_task_twice(path: Path) -> None:
    with JsonTaskStore(path) as store:
        store.create_tasks([make_task(f"t{i:03}") for i in range(200)])
        got: list[str] = []

        def worker(name: str) -> None:
            while (task := store.claim("h1", name, 30)) is not None:
                got.append(task.id)

        threads = [threading.Thread(target=worker, args=(f"ag{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(got) == [f"t{i:03}" for i in range(200)]


_WORKER = textwrap.dedent(
    """
    import sys
    from graphium.store.json_store import JsonTaskStore
    from graphium.records.task import TaskStatus
    path, agent, compact = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = JsonTaskStore(path, compact_bytes=compact)
    print("ready", flush=True)
    while (task := store.claim("h1", agent, 60)) is not None:
        store.transition(task.id, TaskStatus.running, agent_id=agent)
        store.transition(task.id, TaskStatus.completed, agent_id=agent, result={"by": agent})
        print(task.id, flush=True)
    """
)


def _spawn(path: Path, agent: str, compact: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(path), agent, str(compact)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_two_processes_claiming_one_host_share_the_work_exactly(path: Path) -> None:
    count = 400
    with JsonTaskStore(path) as store:
        store.create_tasks([make_task(f"t{i:04}") for i in range(count)])
    procs = [_spawn(path, f"ag{i}", 20_000) for i in range(2)]  # small journal: compactions mid-race
    outputs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    done = [line for out in outputs for line in out if line != "ready"]
    assert len(done) == len(set(done)) == count  # none twice, none lost
    assert all(len(out) > 1 for out in outputs)  # both took part
    with JsonTaskStore(path) as store:
        tasks = store.list_tasks()
        assert {t.status for t in tasks} == {TaskStatus.completed}
        for out, agent in zip(outputs, ["ag0", "ag1"], strict=True):
            assert all(store.get_task(i).result == {"by": agent} for i in out if i != "ready")


def test_kill_9_never_loses_an_acknowledged_update(path: Path) -> None:
    rng = random.Random(7)
    with JsonTaskStore(path) as store:
        store.create_tasks([make_task(f"t{i:05}") for i in range(3_000)])
    acknowledged: list[str] = []
    for round_ in range(6):
        proc = _spawn(path, f"ag{round_}", 30_000)  # frequent compactions, so kills land in them too
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        # a few acknowledgements first, so every round kills a worker mid-stream however loaded
        # the machine is, then a random moment (compactions included)
        acknowledged += [proc.stdout.readline().strip() for _ in range(rng.randint(4, 12))]
        time.sleep(rng.uniform(0.0, 0.1))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        acknowledged += [line.strip() for line in out.splitlines(keepends=True) if line.endswith("\n")]
        with JsonTaskStore(path) as store:  # loadable after every kill
            for task_id in acknowledged:
                task = store.get_task(task_id)
                assert task.status == TaskStatus.completed, task_id
    assert len(acknowledged) == len(set(acknowledged)) > 20
    with JsonTaskStore(path) as store:
        assert store.stats()["completed"] >= len(acknowledged)


# leases with real time ---------------------------------------------------------------------------
def test_expired_lease_backs_off_then_fails_past_max_retries(path: Path) -> None:
    with JsonTaskStore(path, retry_backoff_seconds=0.2, max_backoff_seconds=0.3) as store:
        store.create_tasks([make_task("t1", max_retries=2)])
        store.claim("h1", "dead", 0.01)
        time.sleep(0.02)
        assert store.claim("h1", "ag", 0.01) is None  # requeued, backing off 0.2 s
        task = store.get_task("t1")
        assert task.status == TaskStatus.pending and task.retry_count == 1
        time.sleep(0.25)
        again = store.claim("h1", "ag", 0.01)
        assert again is not None and again.retry_count == 1
        time.sleep(0.02)
        requeued_after = datetime.now(UTC)
        assert store.claim("h1", "ag", 0.01) is None
        task = store.get_task("t1")
        assert task.retry_count == 2 and task.not_before is not None
        backoff = (datetime.fromisoformat(task.not_before) - requeued_after).total_seconds()
        assert 0.3 <= backoff < 0.4  # 0.2 * 2 capped at 0.3
        time.sleep(0.32)
        third = store.claim("h1", "ag", 0.01)
        assert third is not None
        time.sleep(0.02)
        assert store.claim("h1", "ag", 0.01) is None
        final = store.get_task("t1")
        assert final.status == TaskStatus.failed and "no retries left" in (final.error or "")


def test_journal_lines_are_json(path: Path) -> None:
    with JsonTaskStore(path) as store:
        _populate(store)
    for line in path.with_name("state.json.journal").read_text().splitlines():
        entry = json.loads(line)
        assert entry["g"] == 0 and entry["ops"]


def test_store_files_are_private(tmp_path: Path) -> None:
    """Task payloads hold resolved environment values (secrets among them): owner-only files."""
    store = JsonTaskStore(tmp_path / "state.json")
    store.create_tasks([make_task("t1")])
    store.compact()
    for path in (tmp_path / "state.json", tmp_path / "state.json.journal"):
        assert path.stat().st_mode & 0o077 == 0, path
