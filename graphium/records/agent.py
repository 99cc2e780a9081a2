"""Agent records: who pulls a host's tasks, and when it was last heard from.

An agent registers when it starts (its id, host, version, slots and engine version) and shows it
is alive with every claim, task heartbeat and report. The store keeps one record per agent so that
every reader (the server, ``graphium-run status`` on the same store, a second server) can tell a
host whose agent is down from one whose agent is merely busy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from graphium.records.task import Task, TaskStatus

#: An agent unseen for longer than this is ``down``. Idle agents long-poll claims, which the server
#: counts as contact, and busy ones heartbeat their tasks' leases, so a live agent is never silent
#: for this long.
DOWN_AFTER = 45.0


class AgentStatus(str, Enum):
    live = "live"
    down = "down"


class AgentRecord(BaseModel):
    """What an agent said of itself when it registered, and when it was last seen (ISO 8601 UTC)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    agent_id: str = Field(min_length=1, max_length=200)
    host_id: str = Field(min_length=1, max_length=200)
    version: str = Field(default="", max_length=100)
    slots: int = Field(default=1, ge=1, le=1000)
    engine_version: str | None = Field(default=None, max_length=100)
    started_at: str = ""
    last_seen: str = ""

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def age(self, now: datetime) -> float | None:
        """Seconds since the agent was last seen (None when never)."""
        if not self.last_seen:
            return None
        seen = datetime.fromisoformat(self.last_seen)
        seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
        return max(0.0, (now - seen).total_seconds())

    def status(self, now: datetime, down_after: float = DOWN_AFTER) -> AgentStatus:
        ago = self.age(now)
        return AgentStatus.live if ago is not None and ago <= down_after else AgentStatus.down


class AgentInfo(AgentRecord):
    """An agent as operators see it: its record, whether it is live, and the tasks it holds now."""

    state: AgentStatus = Field(alias="status")
    seen_seconds_ago: float | None = None
    running_tasks: list[str] = []


def agent_info(
    record: AgentRecord, now: datetime, running: list[str], *, down_after: float = DOWN_AFTER
) -> AgentInfo:
    """The operator's view of ``record`` at ``now``, holding the ``running`` tasks."""
    return AgentInfo.model_validate(
        {
            **record.dump(),
            "status": record.status(now, down_after).value,
            "seenSecondsAgo": record.age(now),
            "runningTasks": running,
        }
    )


def agents_view(
    records: list[AgentRecord], holding: list[Task], now: datetime, *, down_after: float = DOWN_AFTER
) -> list[AgentInfo]:
    """Every agent of ``records`` as operators see it, with the tasks of ``holding`` it holds."""
    held: dict[str, list[str]] = {}
    for task in holding:
        if task.agent_id and task.status in (TaskStatus.assigned, TaskStatus.running):
            held.setdefault(task.agent_id, []).append(task.id)
    return [
        agent_info(r, now, sorted(held.get(r.agent_id, [])), down_after=down_after)
        for r in sorted(records, key=lambda r: (r.host_id, r.agent_id))
    ]


def no_live_agent(
    host_id: str, records: list[AgentRecord], now: datetime, *, down_after: float = DOWN_AFTER
) -> str | None:
    """Why tasks for ``host_id`` cannot start ("no live agent for vm2, last seen 45 s ago"), or
    None when one of its agents is live."""
    mine = [r for r in records if r.host_id == host_id]
    if any(r.status(now, down_after) is AgentStatus.live for r in mine):
        return None
    ages = [a for a in (r.age(now) for r in mine) if a is not None]
    if not ages:
        return f"no live agent for {host_id}: no agent has registered for it"
    return f"no live agent for {host_id}, last seen {min(ages):.0f} s ago"


__all__ = [
    "DOWN_AFTER",
    "AgentInfo",
    "AgentRecord",
    "AgentStatus",
    "agent_info",
    "agents_view",
    "no_live_agent",
]
