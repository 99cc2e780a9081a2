"""PostgresTaskStore: the store contract on a real PostgreSQL, plus what only a database does
(migrations, concurrent claims across instances, NOTIFY between replicas, leadership)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from graphium.errors import StoreError  # noqa: E402
from graphium.records.event import Event  # noqa: E402
from graphium.records.task import TaskStatus  # noqa: E402
from graphium.store.base import TaskStore  # noqa: E402
from graphium.store.open import open_store  # noqa: E402
from graphium.store.postgres import PostgresTaskStore, notify  # noqa: E402
from graphium.store.postgres.schema import LATEST, MIGRATIONS  # noqa: E402
from lab import postgres as lab_postgres  # noqa: E402
from tests.contract.store_contract import TaskStoreContract, make_task  # noqa: E402

TABLES = "tasks, stacks, versions, events, observations, agents"


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    """One database for the module; each test starts from empty tables (:func:`store`)."""
    with lab_postgres.fresh_database("pgstore") as url:
        yield url


@pytest.fixture
def store(database: str) -> Iterator[PostgresTaskStore]:
    with PostgresTaskStore(database, max_connections=4) as store:
        with store._sessions.batch() as frame:
            for table in TABLES.split(", "):
                frame.conn.execute(f"DELETE FROM {table}")
            frame.conn.execute("UPDATE counters SET value = 0")
        yield store


class TestPostgresStoreContract(TaskStoreContract):
    @pytest.fixture
    def store(self, store: PostgresTaskStore) -> TaskStore:
        return store

    @pytest.fixture
    def second_store(self, store: PostgresTaskStore, database: str) -> Iterator[TaskStore]:
        with PostgresTaskStore(database, max_connections=4) as second:
            yield second


def _open(url: str) -> PostgresTaskStore:
    return PostgresTaskStore(url, max_connections=4)


# migrations ---------------------------------------------------------------------------------------
def _versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


def test_migrations_apply_once_whoever_opens_first(fresh_database: str) -> None:
    """Another process and two threads open a new database at the same moment."""
    script = textwrap.dedent(
        """
        import sys
        from graphium.store.postgres import PostgresTaskStore
        print("ready", flush=True)
        sys.stdin.readline()
        PostgresTaskStore(sys.argv[1]).close()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, fresh_database],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    openers = [threading.Thread(target=lambda: _open(fresh_database).close()) for _ in range(2)]
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(60)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _versions(fresh_database) == [v for v, _ in MIGRATIONS]
    with _open(fresh_database) as store:  # and again: nothing left to apply
        store.create_tasks([make_task("t1")])
    assert _versions(fresh_database) == [v for v, _ in MIGRATIONS]


def test_a_database_newer_than_the_code_is_refused(fresh_database: str) -> None:
    _open(fresh_database).close()
    with psycopg.connect(fresh_database) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (LATEST + 1,))
    with pytest.raises(StoreError, match=f"version {LATEST + 1}, newer"):
        _open(fresh_database)


# concurrency --------------------------------------------------------------------------------------
def test_claims_from_eight_threads_on_two_instances_never_hand_out_a_task_twice(database: str) -> None:
    with _open(database) as first, _open(database) as second:
        with first._sessions.batch() as frame:
            for table in TABLES.split(", "):
                frame.conn.execute(f"DELETE FROM {table}")
        first.create_tasks([make_task(f"t{i:03}", priority=i % 7) for i in range(240)])
        taken: list[str] = []
        guard = threading.Lock()

        def agent(store: PostgresTaskStore, name: str) -> None:
            while batch := store.claim_many("h1", name, 30, 3, start=True):
                with guard:
                    taken.extend(t.id for t in batch)

        threads = [
            threading.Thread(target=agent, args=(first if i % 2 else second, f"ag{i}")) for i in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(taken) == [f"t{i:03}" for i in range(240)]
        assert first.stats()["running"] == 240


def test_claim_walks_the_pending_index(store: PostgresTaskStore) -> None:
    """The claim's pick reads the partial index of pending tasks, not the table."""
    store.create_tasks([make_task(f"t{i:04}", host=f"h{i % 20}") for i in range(2000)])
    with store._sessions.read() as conn:
        conn.execute("ANALYZE tasks")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT id FROM tasks WHERE host_id = 'h1' AND status = 'pending'"
                " ORDER BY priority DESC, date_created, id LIMIT 5 FOR UPDATE SKIP LOCKED"
            )
        )
    assert "tasks_queue" in plan, plan


# NOTIFY between instances -------------------------------------------------------------------------
async def _wakes(listener: PostgresTaskStore) -> tuple[list[tuple[frozenset[str], bool]], asyncio.Task[None]]:
    seen: list[tuple[frozenset[str], bool]] = []
    listening = asyncio.Event()
    task = asyncio.create_task(listener.listen(lambda h, e: seen.append((h, e)), listening=listening))
    await asyncio.wait_for(listening.wait(), 10)
    return seen, task


async def _until(seen: list[tuple[frozenset[str], bool]], count: int) -> None:
    for _ in range(500):
        if len(seen) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} wake-ups, got {seen}")


async def test_commits_of_another_instance_wake_the_hosts_they_touch(database: str) -> None:
    with _open(database) as writer, _open(database) as listener:
        seen, task = await _wakes(listener)
        try:
            writer.append_events(
                [
                    Event(type="task_updated", task_id="a", host_id="vm1", data={"status": "running"}),
                    Event(type="task_updated", task_id="b", host_id="vm2"),
                    Event(type="stack_running", stack_id="web", host_id="vm3"),  # no task: no host
                ]
            )
            await _until(seen, 1)
            assert seen == [(frozenset({"vm1", "vm2"}), False)]
            listener.append_events([Event(type="task_updated", task_id="c", host_id="vm9")])  # its own
            with pytest.raises(RuntimeError), writer.batch():  # rolled back: never delivered
                writer.append_events([Event(type="task_updated", task_id="d", host_id="vm8")])
                raise RuntimeError("abort")
            writer.append_events(
                [Event(type="task_updated", task_id="e", host_id="vm1", data={"status": "completed"})]
            )
            await _until(seen, 2)
            assert seen[1:] == [(frozenset({"vm1"}), True)]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_a_lost_listen_connection_reconnects_and_wakes_everyone(database: str) -> None:
    with _open(database) as writer, _open(database) as listener:
        seen, task = await _wakes(listener)
        try:
            with psycopg.connect(database, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            await _until(seen, 1)
            assert seen == [(frozenset(), True)]
            await asyncio.sleep(0.3)  # listening again
            writer.append_events([Event(type="task_updated", task_id="a", host_id="vm1")])
            await _until(seen, 2)
            assert seen[1] == (frozenset({"vm1"}), False)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def test_a_payload_naming_too_many_hosts_wakes_everyone() -> None:
    events = [Event(type="task_updated", task_id=f"t{i}", host_id=f"host-{i:05}") for i in range(2000)]
    text = notify.payload("me", events)
    assert len(text.encode()) <= 8000
    assert notify.parse(text) == ("me", frozenset(), True)
    assert notify.parse(notify.payload("me", events[:2])) == (
        "me",
        frozenset({"host-00000", "host-00001"}),
        False,
    )
    assert notify.parse("not json") is None


# leadership ---------------------------------------------------------------------------------------
def test_one_instance_leads_until_its_connection_dies(database: str, postgres_url: str) -> None:
    with _open(database) as one, _open(database) as two:
        first, second = one.leadership("monitor"), two.leadership("monitor")
        assert first.try_acquire() is True
        assert second.try_acquire() is False
        assert first.try_acquire() is True  # still held
        assert two.leadership("other").try_acquire() is True  # names are separate locks
        assert first._conn is not None
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first._conn.info.backend_pid,))
        assert first.try_acquire() is False  # learns it lost the lock
        assert second.try_acquire() is True
        assert first.try_acquire() is False
        second.release()
        assert first.try_acquire() is True
    assert not first.held  # closing the store gave it up


# errors and secrets -------------------------------------------------------------------------------
def test_the_password_never_shows(database: str, caplog: pytest.LogCaptureFixture) -> None:
    password = urllib.parse.urlsplit(database).password
    assert password
    with _open(database) as store:
        assert password not in repr(store) and "***" in repr(store)
    wrong = database.replace(f":{urllib.parse.quote(password, safe='')}@", ":not-the-password-42@")
    with pytest.raises(StoreError) as refused:
        _open(wrong)
    assert "not-the-password-42" not in str(refused.value)
    assert "127.0.0.1" in str(refused.value) and "password authentication failed" in str(refused.value)
    assert password not in caplog.text and "not-the-password-42" not in caplog.text


def test_an_unreachable_database_is_a_clear_store_error() -> None:
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=r"cannot open the task store: postgresql://u:\*\*\*@127\.0\.0\.1:1/x"
    ):
        PostgresTaskStore("postgresql://u:secret-pw@127.0.0.1:1/x")
    assert time.monotonic() - started < 10
    with pytest.raises(StoreError, match="cannot open the task store") as bad:
        PostgresTaskStore("postgresql://u:secret-pw@127.0.0.1:55432/x?sslmode=bogus")
    assert "secret-pw" not in str(bad.value)


def test_a_closed_store_refuses_operations(database: str) -> None:
    store = _open(database)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.list_tasks()


def test_open_store_opens_postgres_for_a_url(database: str) -> None:
    with open_store(database) as store:
        assert isinstance(store, PostgresTaskStore)


def test_the_store_outlives_its_connections_being_dropped(database: str) -> None:
    """A database restart (or an idle timeout) kills pooled connections: the next operation
    still works, on a new connection."""
    with PostgresTaskStore(database, max_connections=2, idle_check_seconds=0) as store:
        store.create_tasks([make_task("survivor")])
        with psycopg.connect(database, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert store.get_task("survivor").id == "survivor"
        store.transition("survivor", TaskStatus.cancelled)
