"""Which agents are alive: registrations, and every sign of life the server sees.

Agents register when they start; after that every claim, task heartbeat and report counts as
contact, and an agent inside a claim long-poll is live for as long as the request is open. So an
idle agent needs no heartbeat of its own, and a hundred idle agents cost the server nothing but
their open requests.

Contact is kept in memory and written to the store (where ``graphium-run status`` and other
servers read it) when an agent registers, and otherwise at most every ``PERSIST_EVERY`` seconds
per agent, by the task monitor's pass: one batched write, never one per request. Every replica
sharing a store writes the contact of the agents that talk to it (the monitor's pass runs on
each, leader or not), and reads the others' from the store, so an agent long-polling replica B
is live for replica A too.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from graphium.records.agent import DOWN_AFTER, AgentInfo, AgentRecord, agents_view, no_live_agent
from graphium.records.task import TaskStatus
from graphium.store.base import TaskStore

#: How stale the stored ``lastSeen`` of a live agent may get.
PERSIST_EVERY = 15.0
#: Records of agents down this long are dropped when another agent of their host registers.
RETENTION = timedelta(days=1)
_HOLDING = (TaskStatus.assigned, TaskStatus.running)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


class AgentRegistry:
    """The agents' records: the stored ones, refreshed by what this server sees."""

    def __init__(self, store: TaskStore, *, down_after: float = DOWN_AFTER) -> None:
        self._store = store
        self._down_after = down_after
        self._lock = threading.Lock()
        # agent id -> record (lastSeen as seen here); what agents registered before a restart is
        # known from the start, so their contact afterwards refreshes it instead of replacing it
        self._records: dict[str, AgentRecord] = {a.agent_id: a for a in store.list_agents()}
        self._stored = {a: r.last_seen for a, r in self._records.items()}  # lastSeen as last written
        self._polling: dict[str, int] = {}  # agent id -> open claim long-polls

    def register(self, record: AgentRecord) -> AgentRecord:
        """An agent started (or restarted): store its record at once."""
        now = datetime.now(UTC)
        stamp = _iso(now)
        with self._lock:
            known = self._records.get(record.agent_id)
            started = known.started_at if known and known.started_at else stamp
            update = {"started_at": record.started_at or started, "last_seen": stamp}
            record = record.model_copy(update=update)
            self._records[record.agent_id] = record
            self._stored[record.agent_id] = stamp
        stale = [
            a.agent_id
            for a in self._store.list_agents(host_id=record.host_id)
            if a.agent_id != record.agent_id and (a.age(now) or 0) > RETENTION.total_seconds()
        ]
        with self._store.batch():
            self._store.save_agents([record])
            if stale:
                self._store.forget_agents(stale)
        return record

    def seen(self, host_id: str, agent_id: str | None) -> None:
        """Contact from ``agent_id`` on ``host_id`` (any agent of the host when the id is unknown)."""
        stamp = _iso(datetime.now(UTC))
        with self._lock:
            if agent_id is None:
                for agent, record in self._records.items():
                    if record.host_id == host_id:
                        self._records[agent] = record.model_copy(update={"last_seen": stamp})
                return
            known = self._records.get(agent_id)
            if known is None or known.host_id != host_id:
                known = AgentRecord(agent_id=agent_id, host_id=host_id, started_at=stamp)
            self._records[agent_id] = known.model_copy(update={"last_seen": stamp})

    @contextmanager
    def polling(self, host_id: str, agent_id: str) -> Iterator[None]:
        """An agent waits in a claim long-poll: live until it returns."""
        self.seen(host_id, agent_id)
        with self._lock:
            self._polling[agent_id] = self._polling.get(agent_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._polling.get(agent_id, 1) - 1
                if left:
                    self._polling[agent_id] = left
                else:
                    self._polling.pop(agent_id, None)
            self.seen(host_id, agent_id)

    def _current(self, now: datetime) -> dict[str, AgentRecord]:
        """Stored records, overlaid with this server's fresher contact (inside the lock)."""
        stamp = _iso(now)
        merged = {a.agent_id: a for a in self._store.list_agents()}
        for agent_id, record in self._records.items():
            if agent_id in self._polling:
                record = record.model_copy(update={"last_seen": stamp})
            stored = merged.get(agent_id)
            if stored is None or stored.last_seen <= record.last_seen:
                merged[agent_id] = record
        return merged

    def flush(self) -> int:
        """Write the contact seen since the last write when it is PERSIST_EVERY old; returns how
        many records were written. Called by the task monitor."""
        now = datetime.now(UTC)
        with self._lock:
            current = self._current(now)
            due = [
                record
                for agent_id, record in current.items()
                if agent_id in self._records
                and record.last_seen > self._stored.get(agent_id, "")
                and _age(self._stored.get(agent_id), now) >= PERSIST_EVERY
            ]
            for record in due:
                self._stored[record.agent_id] = record.last_seen
        if due:
            self._store.save_agents(due)
        return len(due)

    def next_flush(self) -> float:
        """Seconds until :meth:`flush` has something to write (inf when nothing is due)."""
        now = datetime.now(UTC)
        with self._lock:
            dirty = [
                agent_id
                for agent_id, r in self._records.items()
                if agent_id in self._polling or r.last_seen > self._stored.get(agent_id, "")
            ]
            ages = [_age(self._stored.get(a), now) for a in dirty]
        return max(0.0, PERSIST_EVERY - max(ages)) if ages else float("inf")

    def last_seen(self, host_id: str) -> datetime | None:
        """The latest contact from any agent of ``host_id``: this server's, or as another replica
        sharing the store wrote it down (its agents may long-poll that one). Reads the store:
        call it off the event loop."""
        now = _iso(datetime.now(UTC))
        stored = [a.last_seen for a in self._store.list_agents(host_id=host_id) if a.last_seen]
        with self._lock:
            stamps = stored + [
                now if agent_id in self._polling else r.last_seen
                for agent_id, r in self._records.items()
                if r.host_id == host_id and r.last_seen
            ]
        return datetime.fromisoformat(max(stamps)) if stamps else None

    def waiting_reason(self, host_id: str) -> str | None:
        """Why tasks for ``host_id`` cannot start now (no live agent), or None."""
        return self.waiting_reasons([host_id]).get(host_id)

    def waiting_reasons(self, host_ids: list[str]) -> dict[str, str]:
        """``{host: why}`` for those of ``host_ids`` without a live agent, from one reading of
        the records."""
        now = datetime.now(UTC)
        with self._lock:
            records = list(self._current(now).values()) if host_ids else []
        reasons = ((h, no_live_agent(h, records, now, down_after=self._down_after)) for h in host_ids)
        return {h: reason for h, reason in reasons if reason}

    def list(self, *, host_id: str | None = None) -> list[AgentInfo]:
        """Every known agent (of one host), live or down, with the tasks it holds now."""
        now = datetime.now(UTC)
        with self._lock:
            records = [r for r in self._current(now).values() if host_id is None or r.host_id == host_id]
        holding = [t for s in _HOLDING for t in self._store.list_tasks(status=s, host_id=host_id)]
        return agents_view(records, holding, now, down_after=self._down_after)


def _age(stamp: str | None, now: datetime) -> float:
    if not stamp:
        return float("inf")
    return (now - datetime.fromisoformat(stamp)).total_seconds()


__all__ = ["PERSIST_EVERY", "AgentRegistry"]
