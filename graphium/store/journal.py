"""The JSON store's append-only journal: one fsynced JSON line per durable operation.

Lines read ``{"g": generation, "ops": [[kind, value], ...]}``; a line is one atomic unit. Every
acknowledged line was fsynced before the next one was written, so only the tail can be damaged: a
torn or garbled tail (a writer killed mid-line, never acknowledged) is ignored and cut off by the
next writer; a bad line followed by good ones is corruption. Lines of an older generation are
already in the main file (a crash between its rename and the journal's truncation).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError as PydanticValidationError

from graphium.errors import StoreError
from graphium.records.event import Event
from graphium.store.base import CommitHook
from graphium.store.files import FileIdentity, identity_of, write_all
from graphium.store.memory import FORMAT_VERSION, StoreState, brief

log = logging.getLogger("graphium.store")

Entry = tuple[int, list[Any]]  # (generation, ops)


def parse_journal(data: bytes, base: int, path: Path) -> tuple[list[Entry], int]:
    """Complete entries of ``data`` (read at byte ``base``), and the byte length they span; a bad
    or partial tail is left out, damage before a good line raises StoreError."""
    entries: list[Entry] = []
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
            raise StoreError(f"{path}: corrupt entry at byte {base + bad_at}")
        entries.append((generation, ops))
        good_end = pos
    return entries, good_end


class Journal:
    """The open journal file and how far this process has read (and written) it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # end of the last complete line applied
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise StoreError(f"{path}: cannot open the journal: {exc.strerror}") from exc

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read_all(self) -> tuple[list[Entry], int]:
        """Every complete entry from the start, and the length they span."""
        size = self.size()
        data = os.pread(self._fd, size, 0) if size else b""
        return parse_journal(data, 0, self.path)

    def read_new(self, size: int) -> list[Entry]:
        """The complete entries between ``offset`` and ``size``; ``offset`` moves past them."""
        data = os.pread(self._fd, size - self.offset, self.offset)
        entries, length = parse_journal(data, self.offset, self.path)
        self.offset += length
        return entries

    def append(self, generation: int, ops: list[Any]) -> None:
        """Write one line (not yet fsynced: see :meth:`flush`), first cutting off a torn tail."""
        data = (json.dumps({"g": generation, "ops": ops}, separators=(",", ":")) + "\n").encode()
        try:
            if self.size() != self.offset:  # a torn tail left by a writer that died mid-line
                os.ftruncate(self._fd, self.offset)
            write_all(self._fd, data)
        except OSError as exc:
            raise StoreError(f"{self.path}: write failed: {exc.strerror}") from exc
        self.offset += len(data)

    def flush(self) -> None:
        """Make every line written so far durable."""
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise StoreError(f"{self.path}: fsync failed: {exc.strerror}") from exc

    def reset(self) -> None:
        """Empty the journal (its lines are in the main file now), durably."""
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.offset = 0


class MainFile(Protocol):
    """The main file: read whole, replaced whole (atomically), and its identity when last seen."""

    identity: FileIdentity | None

    def read(self) -> dict[str, dict[str, Any]] | None: ...

    def write(self, data: dict[str, dict[str, Any]]) -> None: ...


class Lock(Protocol):
    """An inter-process lock (a file lock)."""

    @property
    def lock_file(self) -> str: ...

    def acquire(self) -> Any: ...

    def release(self) -> None: ...


class JournalledStore:
    """The transactions of a store kept as a main file plus a journal, shared by several processes.

    A subclass keeps its records in ``self._state`` and appends journal operations to
    ``self._staged`` inside :meth:`_txn`; this class holds the lock, catches up with other
    writers, appends one line per outermost transaction, compacts, and calls the commit hooks.
    """

    def __init__(
        self, path: Path, main: MainFile, lock: Lock, *, max_events: int, compact_bytes: int
    ) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self.max_events = max_events
        self.compact_bytes = compact_bytes
        self._storage = main
        self._lock = lock
        self._mutex = threading.RLock()
        self._depth = 0
        self._staged: list[list[Any]] = []
        self._staged_events: list[Event] = []
        self._hooks: list[CommitHook] = []  # replaced, never changed in place: read without a lock
        self._hooks_lock = threading.Lock()
        self._state = StoreState(max_events)
        self._generation = 0
        self._main_identity: FileIdentity | None = None
        self._caught_up = 0  # catch-ups with other processes' writes; told: those reported
        self._caught_up_told = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the task store: {exc.strerror}") from exc
        self._journal = Journal(self.journal_path)
        with self._txn():
            pass  # creates the main file if missing, and loads

    def close(self) -> None:
        with self._mutex:
            self._journal.close()

    # grouping -----------------------------------------------------------------------------
    def batch(self) -> AbstractContextManager[None]:
        """One lock hold and one journal line for everything inside; all or nothing.

        If the body raises, nothing it did is written (the cache reloads from disk).
        """
        return self._txn()

    def on_commit(self, hook: CommitHook) -> Callable[[], None]:
        """Call ``hook(events)`` after every durable commit this instance makes (an outermost batch,
        or a single operation), in the committing thread, with the events committed in it; returns
        the function that removes the hook. A hook's error is logged, never raised: the commit
        stands. Writes by other processes call no hook (watch the files for those)."""
        with self._hooks_lock:  # not the store's mutex, which a batch in another thread holds
            self._hooks = [*self._hooks, hook]

        def remove() -> None:
            with self._hooks_lock:
                self._hooks = [h for h in self._hooks if h is not hook]

        return remove

    def changed_elsewhere(self) -> bool:
        """Whether another process wrote the store since the last call: a write not read yet
        (a stat of each file; nothing is read), or one a read of this instance caught up with
        meanwhile."""
        with self._mutex:
            caught_up, self._caught_up_told = self._caught_up != self._caught_up_told, self._caught_up
            try:
                main = identity_of(os.stat(self.path))
            except OSError:
                return True
            unread = main != self._main_identity or self._journal.size() != self._journal.offset
            if unread:  # told now: the read that catches up with it is no news
                self._caught_up_told = self._caught_up + 1
            return caught_up or unread

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
        its own fsync, and the commit hooks run after it.
        """
        written = False
        committed: list[Event] = []
        with self._mutex:
            outer = self._depth == 0
            if outer:
                self._acquire()
            self._depth += 1
            try:
                if outer:
                    self._sync()
                yield
                if outer and self._staged:
                    committed, self._staged_events = self._staged_events, []
                    self._write_staged()
                    written = True
            except BaseException:
                if outer and self._staged:
                    self._staged.clear()
                    self._staged_events = []
                    self._main_identity = None  # memory holds unwritten changes: reload next time
                raise
            finally:
                self._depth -= 1
                if outer:
                    self._lock.release()
            hooks = self._hooks
        if written:
            self._journal.flush()
            for hook in hooks:
                try:
                    hook(committed)
                except Exception:
                    log.exception("%s: a commit hook failed", self.path)

    def _acquire(self) -> None:
        if self._journal.closed:
            raise StoreError(f"{self.path}: the store is closed")
        try:
            self._lock.acquire()
        except TimeoutError as exc:  # filelock's Timeout is one
            raise StoreError(f"{self.path}: timed out waiting for {self._lock.lock_file}") from exc

    def _write_staged(self) -> None:
        self._journal.append(self._generation, self._staged)
        self._staged = []
        main_size = self._main_identity[1] if self._main_identity else 0
        if self._journal.offset >= max(self.compact_bytes, main_size):
            self._compact()

    def _compact(self) -> None:
        try:
            self._storage.write(self._state.snapshot(self._generation + 1))
            self._generation += 1
            self._main_identity = self._storage.identity
            # Lines of the old generation are now in the main file; a crash before this
            # truncation is harmless because replay skips them.
            self._journal.reset()
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
        if identity_of(st) != self._main_identity:
            self._caught_up += 1
            self._load()
            return
        size = self._journal.size()
        if size == self._journal.offset:
            return
        self._caught_up += 1
        if size < self._journal.offset:
            self._load()
            return
        offset = self._journal.offset
        entries = self._journal.read_new(size)
        if any(g != self._generation for g, _ in entries):
            self._journal.offset = offset
            self._load()
            return
        for _, ops in entries:
            self._apply(ops)

    def _load(self) -> None:
        """Read the main file and replay the journal over it, from scratch."""
        self._state = StoreState(self.max_events)
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
            self._state.seq = int(meta.get("seq", 0))
            self._state.restore(doc)
        except StoreError:
            raise
        except (PydanticValidationError, AttributeError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.path}: not a valid task store file: {brief(exc)}") from exc
        self._main_identity = self._storage.identity

        entries, length = self._journal.read_all()
        for generation, ops in entries:
            if generation > self._generation:
                raise StoreError(
                    f"{self.journal_path}: journal is newer (generation {generation}) than"
                    f" {self.path} (generation {self._generation}); was the state file replaced?"
                )
            if generation == self._generation:
                self._apply(ops)
        self._journal.offset = length

    def _apply(self, ops: list[Any]) -> None:
        """Replay one journal entry into memory."""
        try:
            self._state.apply(ops)
        except (PydanticValidationError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"{self.journal_path}: invalid entry: {brief(exc)}") from exc


__all__ = ["Entry", "Journal", "JournalledStore", "parse_journal"]
