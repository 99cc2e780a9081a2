"""The default task store: a TinyDB JSON file plus an append-only journal beside it.

Why a journal: rewriting a multi-megabyte file for every status change caps a store at a few
dozen changes per second, while agents and runners need individually durable updates by the
thousand. So every operation (or ``batch()``) appends one fsynced JSON line to
``<path>.journal``; the TinyDB file ``<path>`` is rewritten, atomically, only when the journal has
grown as large as it ("compaction"). Files:

- ``<path>``: a TinyDB database (tables ``meta``, ``stacks``, ``tasks``, ``events``), readable with
  plain ``TinyDB(path)``; ``meta`` holds the format, the compaction generation and the last event
  seq. Written only as temp file + fsync + rename + directory fsync.
- ``<path>.journal``: lines ``{"g": generation, "ops": [[kind, value], ...]}``. A line is one
  atomic unit; a torn or garbled tail (a writer killed mid-line, never acknowledged) is ignored
  and cut off by the next writer; a bad line followed by good ones is corruption. Lines of an
  older generation are already in ``<path>`` (a crash between rename and journal truncation).
- ``<path>.lock``: a file lock held for every operation, reads included, so several processes
  share the store safely.

Each instance keeps the whole state in memory and, under the lock, catches up with other
processes' changes: the journal is read incrementally from the last offset seen, and the main
file is reloaded only when its identity (inode, size, mtime) changed.
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import filelock
from pydantic import ValidationError as PydanticValidationError
from tinydb import TinyDB
from tinydb.storages import Storage

from graphium.errors import NotFoundError, StoreError, TransitionError
from graphium.graph import cycles
from graphium.plan.model import ObservedHost
from graphium.records.event import Event
from graphium.records.stack import StackRecord, check_stack_transition
from graphium.records.task import Task, TaskStatus, check_transition

DEFAULT_STATE = ".graphium/state.json"  # the store file when none is named (--state, GRAPHIUM_STATE)
FORMAT_VERSION = 1
_LEASED = frozenset({TaskStatus.assigned, TaskStatus.running})
_FileIdentity = tuple[int, int, int]
_QueueKey = tuple[int, str, str]  # (-priority, dateCreated, id): claim order


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _identity(st: os.stat_result) -> _FileIdentity:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _fsync_dir(directory: Path) -> None:
    """A rename or a new file is durable only once its directory entry is."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class _AtomicJSONStorage(Storage):
    """TinyDB storage whose every write is atomic and durable (temp file, fsync, rename)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.identity: _FileIdentity | None = None  # of the file last read or written

    def read(self) -> dict[str, dict[str, Any]] | None:
        try:
            with open(self.path, "rb") as fh:
                self.identity = _identity(os.fstat(fh.fileno()))
                raw = fh.read()
        except FileNotFoundError:
            self.identity = None
            return None
        if not raw.strip():
            return None
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("top level is not a JSON object")
        return data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, json.dumps(data, separators=(",", ":")).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self.identity = _identity(os.stat(self.path))

    def close(self) -> None:
        pass


class JsonTaskStore:
    """TaskStore over a TinyDB JSON file and a journal; safe for several processes at once.

    ``retry_backoff_seconds`` and ``max_backoff_seconds`` shape the delay before a task whose
    lease expired may be claimed again (doubling per retry). ``compact_bytes`` is the least journal
    size that triggers compaction (it also waits for the journal to outgrow the main file, so
    compaction costs O(1) amortised per operation). ``max_events`` bounds event retention.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retry_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 300.0,
        max_events: int = 10_000,
        compact_bytes: int = 1 << 20,
        lock_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.retry_backoff_seconds = retry_backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.max_events = max_events
        self.compact_bytes = compact_bytes

        self._db = TinyDB(str(self.path), storage=_AtomicJSONStorage)
        storage = self._db.storage
        assert isinstance(storage, _AtomicJSONStorage)
        self._storage = storage
        self._mutex = threading.RLock()
        self._lock = filelock.FileLock(
            str(self.path) + ".lock", timeout=lock_timeout, thread_local=False, preserve_lock_file=True
        )
        self._depth = 0
        self._staged: list[list[Any]] = []

        self._tasks: dict[str, Task] = {}
        self._stacks: dict[str, StackRecord] = {}
        self._events: list[Event] = []
        self._observations: dict[str, dict[str, Any]] = {}  # host -> {observed, reportedAt}
        self._seq = 0
        self._generation = 0
        self._queue: dict[str, list[_QueueKey]] = {}  # host -> pending tasks in claim order
        self._leased: dict[str, set[str]] = {}  # host -> assigned/running tasks with a lease
        self._main_identity: _FileIdentity | None = None
        self._journal_offset = 0  # end of the last complete journal line applied

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._journal_fd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the task store: {exc.strerror}") from exc
        with self._txn():
            pass  # creates the main file if missing, and loads

    # lifecycle ----------------------------------------------------------------------------
    def close(self) -> None:
        with self._mutex:
            if self._journal_fd >= 0:
                os.close(self._journal_fd)
                self._journal_fd = -1

    def __enter__(self) -> JsonTaskStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"JsonTaskStore({str(self.path)!r})"

    # stacks -------------------------------------------------------------------------------
    def get_stack(self, stack_id: str) -> StackRecord | None:
        with self._txn():
            record = self._stacks.get(stack_id)
            return _clone(record) if record else None

    def list_stacks(self) -> list[StackRecord]:
        with self._txn():
            return [_clone(self._stacks[k]) for k in sorted(self._stacks)]

    def save_stack(self, record: StackRecord, *, expected_revision: int | None = None) -> StackRecord:
        with self._txn():
            current = self._stacks.get(record.id)
            revision = current.revision if current else 0
            if expected_revision is not None and revision != expected_revision:
                raise StoreError(
                    f"stack {record.id}: stored revision is {revision}, expected {expected_revision}"
                    " (changed by someone else)"
                )
            check_stack_transition(record.id, current.status if current else None, record.status)
            now = _iso(_now())
            created = current.created_at if current else (record.created_at or now)
            stored = _clone(record, revision=revision + 1, created_at=created, updated_at=now)
            self._stage_stack(stored)
            return _clone(stored)

    def delete_stack(self, stack_id: str) -> None:
        with self._txn():
            if stack_id not in self._stacks:
                raise NotFoundError(f"stack {stack_id} not found")
            for task_id in [t.id for t in self._tasks.values() if t.stack_id == stack_id]:
                self._drop_task(task_id)
                self._staged.append(["task-", task_id])
            self._drop_stack(stack_id)
            self._staged.append(["stack-", stack_id])

    # tasks --------------------------------------------------------------------------------
    def create_tasks(self, tasks: list[Task]) -> None:
        with self._txn():
            new_ids: set[str] = set()
            for task in tasks:
                if task.id in self._tasks or task.id in new_ids:
                    raise StoreError(f"task {task.id} already exists")
                new_ids.add(task.id)
            for task in tasks:
                unknown = [d for d in task.depends_on if d not in new_ids and d not in self._tasks]
                if unknown:
                    raise StoreError(f"task {task.id}: dependsOn names unknown task(s) {', '.join(unknown)}")
            _check_acyclic(tasks)
            for task in tasks:
                self._stage_task(_clone(task))

    def get_task(self, task_id: str) -> Task:
        with self._txn():
            return _clone(self._task(task_id))

    def list_tasks(
        self,
        *,
        status: TaskStatus | None = None,
        stack_id: str | None = None,
        host_id: str | None = None,
    ) -> list[Task]:
        """Matching tasks in creation order."""
        with self._txn():
            return [
                _clone(t)
                for t in self._tasks.values()
                if (status is None or t.status == status)
                and (stack_id is None or t.stack_id == stack_id)
                and (host_id is None or t.host_id == host_id)
            ]

    def transition(
        self,
        task_id: str,
        status: TaskStatus,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        agent_id: str | None = None,
        expected: TaskStatus | None = None,
    ) -> Task:
        """Change a task's status, stamping its timestamps.

        ``expected`` makes the change conditional on the current status (compare-and-set). An
        ``agent_id`` that differs from the agent holding an assigned or running task is refused,
        so an agent whose lease was taken over cannot overwrite its successor's work.
        """
        with self._txn():
            current = self._task(task_id)
            if expected is not None and current.status != expected:
                raise TransitionError(f"task {task_id}: is {current.status.value}, expected {expected.value}")
            check_transition(task_id, current.status, status)
            if (
                agent_id is not None
                and current.status in _LEASED
                and current.agent_id is not None
                and current.agent_id != agent_id
            ):
                raise StoreError(f"task {task_id}: held by agent {current.agent_id}, not {agent_id}")
            now = _iso(_now())
            update: dict[str, Any] = {"status": status}
            if agent_id is not None:
                update["agent_id"] = agent_id
            if status == TaskStatus.assigned:
                update["assigned_at"] = now
            elif status == TaskStatus.running:
                update["started_at"] = now
            elif status == TaskStatus.pending:
                update |= {
                    "agent_id": None,
                    "assigned_at": None,
                    "started_at": None,
                    "completed_at": None,
                    "lease_expires_at": None,
                    "not_before": None,
                }
            else:  # completed, failed, cancelled
                update |= {"completed_at": now, "lease_expires_at": None}
            if error is not None:
                update["error"] = error
            elif status == TaskStatus.completed:
                update["error"] = None
            if result is not None:
                update["result"] = result
            stored = _clone(current, **update)
            self._stage_task(stored)
            return _clone(stored)

    def claim(self, host_id: str, agent_id: str, lease_seconds: float) -> Task | None:
        """Take the best runnable task of ``host_id`` (see the protocol), after first returning
        that host's expired leases to the queue."""
        taken = self.claim_many(host_id, agent_id, lease_seconds, 1)
        return taken[0] if taken else None

    def claim_many(
        self, host_id: str, agent_id: str, lease_seconds: float, limit: int, *, start: bool = False
    ) -> list[Task]:
        """Take up to ``limit`` runnable tasks in claim order, in one lock hold and one journal
        line, so an agent with several slots pays one durable write per claim, not per task."""
        with self._txn():
            now = _now()
            self._requeue_host(host_id, now)
            chosen: list[Task] = []
            for _, _, task_id in self._queue.get(host_id, ()):
                if len(chosen) >= limit:
                    break
                task = self._tasks[task_id]
                if task.not_before is not None and _parse_time(task.not_before) > now:
                    continue
                if all(self._completed(dep) for dep in task.depends_on):
                    chosen.append(task)
            stamp = _iso(now)
            taken: list[Task] = []
            for task in chosen:  # staging re-indexes the queue: only after the scan
                stored = _clone(
                    task,
                    status=TaskStatus.running if start else TaskStatus.assigned,
                    agent_id=agent_id,
                    assigned_at=stamp,
                    started_at=stamp if start else None,
                    completed_at=None,
                    lease_expires_at=_iso(now + timedelta(seconds=lease_seconds)),
                )
                self._stage_task(stored)
                taken.append(_clone(stored))
            return taken

    def heartbeat(self, task_id: str, agent_id: str, lease_seconds: float) -> Task:
        """Extend a lease; refused once it expired, even if nobody has requeued the task yet."""
        with self._txn():
            current = self._task(task_id)
            now = _now()
            if current.status not in _LEASED or current.agent_id != agent_id:
                holder = f" by agent {current.agent_id}" if current.agent_id else ""
                raise StoreError(
                    f"task {task_id}: not held by agent {agent_id} (it is {current.status.value}{holder})"
                )
            if current.lease_expires_at is not None and _parse_time(current.lease_expires_at) <= now:
                raise StoreError(f"task {task_id}: the lease of agent {agent_id} expired")
            stored = _clone(current, lease_expires_at=_iso(now + timedelta(seconds=lease_seconds)))
            self._stage_task(stored)
            return _clone(stored)

    def requeue_expired(self, now: str | None = None) -> list[Task]:
        with self._txn():
            moment = _parse_time(now) if now else _now()
            changed: list[Task] = []
            for host_id in list(self._leased):
                changed += self._requeue_host(host_id, moment)
            return [_clone(t) for t in changed]

    def stats(self, *, stack_id: str | None = None) -> dict[str, int]:
        with self._txn():
            counts = {"total": 0} | {s.value: 0 for s in TaskStatus}
            for task in self._tasks.values():
                if stack_id is None or task.stack_id == stack_id:
                    counts["total"] += 1
                    counts[task.status.value] += 1
            return counts

    # events -------------------------------------------------------------------------------
    def append_events(self, events: list[Event]) -> list[Event]:
        """Assign each event the next ``seq``, and the current time unless it carries one."""
        with self._txn():
            now = _iso(_now())
            stored = [_clone(e, seq=self._seq + i, time=e.time or now) for i, e in enumerate(events, start=1)]
            if stored:
                self._add_events(stored)
                self._staged.append(["events", [e.dump() for e in stored]])
            return [_clone(e) for e in stored]

    def list_events(self, *, after: int = 0, stack_id: str | None = None, limit: int = 1000) -> list[Event]:
        with self._txn():
            start = bisect.bisect_right(self._events, after, key=lambda e: e.seq)
            found: list[Event] = []
            for event in self._events[start:]:
                if len(found) >= limit:
                    break
                if stack_id is None or event.stack_id == stack_id:
                    found.append(_clone(event))
            return found

    # agents' observations -----------------------------------------------------------------
    def save_observation(self, observed: ObservedHost) -> None:
        with self._txn():
            entry = {"host": observed.host, "observed": observed.dump(), "reportedAt": _iso(_now())}
            self._observations[observed.host] = entry
            self._staged.append(["observed", entry])

    def get_observation(self, host_id: str) -> tuple[ObservedHost, str] | None:
        with self._txn():
            entry = self._observations.get(host_id)
            if entry is None:
                return None
            return ObservedHost.model_validate(entry["observed"]), str(entry["reportedAt"])

    # grouping -----------------------------------------------------------------------------
    def batch(self) -> AbstractContextManager[None]:
        """One lock hold and one journal line for everything inside; all or nothing.

        If the body raises, nothing it did is written (the cache reloads from disk).
        """
        return self._txn()

    def compact(self) -> None:
        """Fold the journal into the TinyDB file now (it also happens automatically)."""
        with self._txn():
            self._compact()

    # transactions -------------------------------------------------------------------------
    @contextmanager
    def _txn(self) -> Iterator[None]:
        """Hold the lock, catch up with other writers, and append what the body staged.

        The fsync that makes the append durable runs after the lock is released, so that
        concurrent writers (threads or processes) overlap their fsyncs instead of queueing
        behind each other's. That is safe because all appends go to one file: whoever reads the
        line early and writes something that depends on it fsyncs the same file before
        acknowledging, which flushes this line too. The operation itself returns only after
        its own fsync.
        """
        written = False
        with self._mutex:
            outer = self._depth == 0
            if outer:
                if self._journal_fd < 0:
                    raise StoreError(f"{self.path}: the store is closed")
                try:
                    self._lock.acquire()
                except filelock.Timeout as exc:
                    raise StoreError(f"{self.path}: timed out waiting for {self._lock.lock_file}") from exc
            self._depth += 1
            try:
                if outer:
                    self._sync()
                yield
                if outer and self._staged:
                    self._write_staged()
                    written = True
            except BaseException:
                if outer and self._staged:
                    self._staged.clear()
                    self._main_identity = None  # memory holds unwritten changes: reload next time
                raise
            finally:
                self._depth -= 1
                if outer:
                    self._lock.release()
        if written:
            try:
                os.fdatasync(self._journal_fd)
            except OSError as exc:
                raise StoreError(f"{self.journal_path}: fsync failed: {exc.strerror}") from exc

    def _write_staged(self) -> None:
        line = json.dumps({"g": self._generation, "ops": self._staged}, separators=(",", ":")) + "\n"
        data = line.encode()
        try:
            size = os.fstat(self._journal_fd).st_size
            if size != self._journal_offset:  # a torn tail left by a writer that died mid-line
                os.ftruncate(self._journal_fd, self._journal_offset)
            _write_all(self._journal_fd, data)
        except OSError as exc:
            raise StoreError(f"{self.journal_path}: write failed: {exc.strerror}") from exc
        self._journal_offset += len(data)
        self._staged.clear()
        main_size = self._main_identity[1] if self._main_identity else 0
        if self._journal_offset >= max(self.compact_bytes, main_size):
            self._compact()

    def _compact(self) -> None:
        doc: dict[str, dict[str, Any]] = {
            "meta": {"1": {"format": FORMAT_VERSION, "generation": self._generation + 1, "seq": self._seq}},
            "stacks": {str(i): s.dump() for i, s in enumerate(self._stacks.values(), start=1)},
            "tasks": {str(i): t.dump() for i, t in enumerate(self._tasks.values(), start=1)},
            "events": {str(e.seq): e.dump() for e in self._events},
            "observations": {str(i): o for i, o in enumerate(self._observations.values(), start=1)},
        }
        try:
            self._storage.write(doc)
            self._generation += 1
            self._main_identity = self._storage.identity
            # Lines of the old generation are now in the main file; a crash before this
            # truncation is harmless because replay skips them.
            os.ftruncate(self._journal_fd, 0)
            os.fsync(self._journal_fd)
            self._journal_offset = 0
        except OSError as exc:
            self._main_identity = None
            raise StoreError(f"{self.path}: compaction failed: {exc.strerror}") from exc

    # loading ------------------------------------------------------------------------------
    def _sync(self) -> None:
        """Catch up with other processes' writes (incrementally when the main file is unchanged)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read: {exc.strerror}") from exc
        if st is None:
            if self._main_identity is not None:
                raise StoreError(f"{self.path}: the state file disappeared")
            self._load()
            return
        if _identity(st) != self._main_identity:
            self._load()
            return
        size = os.fstat(self._journal_fd).st_size
        if size == self._journal_offset:
            return
        if size < self._journal_offset:
            self._load()
            return
        data = os.pread(self._journal_fd, size - self._journal_offset, self._journal_offset)
        entries, length = self._parse_journal(data, self._journal_offset)
        if any(g != self._generation for g, _ in entries):
            self._load()
            return
        for _, ops in entries:
            self._apply(ops)
        self._journal_offset += length

    def _load(self) -> None:
        """Read the main file and replay the journal over it, from scratch."""
        self._tasks, self._stacks, self._events = {}, {}, []
        self._observations = {}
        self._queue, self._leased = {}, {}
        self._main_identity = None
        try:
            doc = self._storage.read()
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreError(f"{self.path}: not a valid task store file: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read: {exc.strerror}") from exc
        if doc is None:
            doc = {"meta": {"1": {"format": FORMAT_VERSION, "generation": 0, "seq": 0}}}
            try:
                self._storage.write(doc)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create: {exc.strerror}") from exc
        try:
            meta: dict[str, Any] = next(iter(doc.get("meta", {}).values()), {})
            fmt = meta.get("format", FORMAT_VERSION)
            if fmt != FORMAT_VERSION:
                raise StoreError(f"{self.path}: unsupported task store format {fmt!r}")
            self._generation = int(meta.get("generation", 0))
            self._seq = int(meta.get("seq", 0))
            for value in doc.get("observations", {}).values():
                self._put_observation(value)
            for value in doc.get("stacks", {}).values():
                self._put_stack(StackRecord.model_validate(value))
            for value in doc.get("tasks", {}).values():
                self._put_task(Task.model_validate(value))
            events = sorted(
                (Event.model_validate(v) for v in doc.get("events", {}).values()), key=lambda e: e.seq
            )
            self._add_events(events)
        except StoreError:
            raise
        except (PydanticValidationError, AttributeError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.path}: not a valid task store file: {_brief(exc)}") from exc
        self._main_identity = self._storage.identity

        size = os.fstat(self._journal_fd).st_size
        data = os.pread(self._journal_fd, size, 0) if size else b""
        entries, length = self._parse_journal(data, 0)
        for generation, ops in entries:
            if generation > self._generation:
                raise StoreError(
                    f"{self.journal_path}: journal is newer (generation {generation}) than"
                    f" {self.path} (generation {self._generation}); was the state file replaced?"
                )
            if generation == self._generation:
                self._apply(ops)
        self._journal_offset = length

    def _parse_journal(self, data: bytes, base: int) -> tuple[list[tuple[int, list[Any]]], int]:
        """Complete entries, and the byte length they span; a bad or partial tail is left out.

        Every acknowledged line was fsynced before the next one was written, so only the tail can
        be damaged; damage followed by a good line means the file itself is corrupt.
        """
        entries: list[tuple[int, list[Any]]] = []
        good_end = 0
        bad_at: int | None = None
        pos = 0
        while pos < len(data):
            newline = data.find(b"\n", pos)
            if newline < 0:
                break
            start, pos = pos, newline + 1
            try:
                entry = json.loads(data[start:newline])
                generation, ops = entry["g"], entry["ops"]
                if not isinstance(generation, int) or not isinstance(ops, list):
                    raise ValueError("bad entry")
            except (ValueError, UnicodeDecodeError, TypeError, KeyError):
                if bad_at is None:
                    bad_at = start
                continue
            if bad_at is not None:
                raise StoreError(f"{self.journal_path}: corrupt entry at byte {base + bad_at}")
            entries.append((generation, ops))
            good_end = pos
        return entries, good_end

    def _apply(self, ops: list[Any]) -> None:
        """Replay one journal entry into memory."""
        try:
            for kind, value in ops:
                if kind == "task":
                    self._put_task(Task.model_validate(value))
                elif kind == "task-":
                    self._drop_task(value)
                elif kind == "stack":
                    self._put_stack(StackRecord.model_validate(value))
                elif kind == "stack-":
                    self._drop_stack(value)
                elif kind == "observed":
                    self._put_observation(value)
                elif kind == "events":
                    self._add_events([Event.model_validate(v) for v in value])
                else:
                    raise ValueError(f"unknown operation {kind!r}")
        except (PydanticValidationError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.journal_path}: invalid entry: {_brief(exc)}") from exc

    # in-memory state and indexes ----------------------------------------------------------
    def _stage_task(self, task: Task) -> None:
        self._put_task(task)
        self._staged.append(["task", task.dump()])

    def _stage_stack(self, record: StackRecord) -> None:
        self._put_stack(record)
        self._staged.append(["stack", record.dump()])

    def _put_task(self, task: Task) -> None:
        old = self._tasks.get(task.id)
        if old is not None:
            self._unindex(old)
        self._tasks[task.id] = task
        if task.status == TaskStatus.pending:
            bisect.insort(self._queue.setdefault(task.host_id, []), _queue_key(task))
        elif task.status in _LEASED and task.lease_expires_at is not None:
            self._leased.setdefault(task.host_id, set()).add(task.id)

    def _drop_task(self, task_id: str) -> None:
        old = self._tasks.pop(task_id, None)
        if old is not None:
            self._unindex(old)

    def _unindex(self, task: Task) -> None:
        if task.status == TaskStatus.pending:
            queue = self._queue[task.host_id]
            key = _queue_key(task)
            del queue[bisect.bisect_left(queue, key)]
        else:
            leased = self._leased.get(task.host_id)
            if leased is not None:
                leased.discard(task.id)

    def _put_observation(self, entry: Any) -> None:
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str) or "reportedAt" not in entry:
            raise ValueError("an observation needs 'host', 'observed' and 'reportedAt'")
        ObservedHost.model_validate(entry.get("observed"))
        self._observations[entry["host"]] = entry

    def _put_stack(self, record: StackRecord) -> None:
        self._stacks[record.id] = record

    def _drop_stack(self, stack_id: str) -> None:
        self._stacks.pop(stack_id, None)

    def _add_events(self, events: list[Event]) -> None:
        self._events.extend(events)
        if events:
            self._seq = max(self._seq, events[-1].seq)
        excess = len(self._events) - self.max_events
        if excess > 0:
            del self._events[:excess]

    def _task(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise NotFoundError(f"task {task_id} not found")
        return task

    def _completed(self, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.status == TaskStatus.completed

    def _requeue_host(self, host_id: str, now: datetime) -> list[Task]:
        """Give back tasks whose lease expired: pending after a backoff, or failed when out of retries."""
        changed: list[Task] = []
        for task_id in sorted(self._leased.get(host_id, ())):
            task = self._tasks[task_id]
            if task.lease_expires_at is None or _parse_time(task.lease_expires_at) > now:
                continue
            holder = f"agent {task.agent_id}" if task.agent_id else "its agent"
            retries = task.retry_count + 1
            if retries > task.max_retries:
                check_transition(task.id, task.status, TaskStatus.failed)
                stored = _clone(
                    task,
                    status=TaskStatus.failed,
                    completed_at=_iso(now),
                    lease_expires_at=None,
                    error=f"lease of {holder} expired; no retries left"
                    f" ({task.retry_count} of {task.max_retries} used)",
                )
            else:
                check_transition(task.id, task.status, TaskStatus.pending)
                delay = min(self.retry_backoff_seconds * 2 ** (retries - 1), self.max_backoff_seconds)
                stored = _clone(
                    task,
                    status=TaskStatus.pending,
                    retry_count=retries,
                    not_before=_iso(now + timedelta(seconds=delay)),
                    agent_id=None,
                    assigned_at=None,
                    started_at=None,
                    lease_expires_at=None,
                    error=f"lease of {holder} expired (retry {retries} of {task.max_retries})",
                )
            self._stage_task(stored)
            changed.append(stored)
        return changed


_Model = TypeVar("_Model", Task, StackRecord, Event)


def _clone(model: _Model, **update: Any) -> _Model:
    """An independent, validated copy. A JSON round trip is several times cheaper than
    ``deepcopy``, and it checks that ``update`` holds valid, JSON-able values."""
    source = model.model_copy(update=update) if update else model
    return type(model).model_validate(source.dump())


def _queue_key(task: Task) -> _QueueKey:
    return (-task.priority, task.date_created, task.id)


def _check_acyclic(tasks: list[Task]) -> None:
    """A dependency cycle would leave its tasks pending forever: refuse it up front."""
    found = cycles({t.id: t.depends_on for t in tasks})
    if found:
        raise StoreError(f"tasks form a dependency cycle: {' -> '.join(found[0])}")


def _brief(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


__all__ = ["DEFAULT_STATE", "JsonTaskStore"]
