"""What the hosts run now, as operators read it (``ps``), and a stored stack reconciled with it.

The store says what graphium last did; only the engines know whether a container still runs. So
``status`` asks the hosts (through whatever transport reaches them) and :func:`reconcile` puts the
two side by side: a stack stored ``running`` whose container exited reads ``degraded``, never a
stale "running 100%". Pure: tested from data.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from graphium.records.stack import StackRecord, StackStatus

__all__ = ["LiveContainer", "LiveHost", "LiveSummary", "humanise_seconds", "reconcile"]


class _Live(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class LiveContainer(_Live):
    """One graphium-managed container as its engine reports it now."""

    stack: str
    name: str  # the stack's container name (label graphium.container)
    docker_name: str
    host: str
    id: str  # short id
    state: str  # running, exited, created, paused, restarting, dead
    health: str | None = None  # healthy, unhealthy, starting; None without a health check
    image: str = ""
    ports: list[str] = []  # "10.0.0.1:8081->80/tcp"
    started_at: str | None = None
    uptime_seconds: float | None = None  # while running
    restarts: int = 0
    exit_code: int | None = None  # once exited


class LiveHost(_Live):
    """One host's live containers, or why they could not be read."""

    host: str
    containers: list[LiveContainer] = []
    error: str | None = None


class LiveSummary(_Live):
    """A stored stack beside what its hosts report."""

    stack: str
    stored: StackStatus
    status: str  # the stored status, or "degraded" when the hosts contradict a "running"
    running: int
    expected: int
    checked: int = 0  # placements on hosts that were asked (the rest are unchecked)
    problems: list[str] = []  # "app-1 on vm1: exited (code 1)"
    unreachable: list[str] = []  # "vm2: no live agent for vm2, last seen 45 s ago"
    unchecked: list[str] = []  # hosts not asked (not in the inventory, or agent hosts without a server)


def _problem(container: LiveContainer) -> str | None:
    if container.state != "running":
        code = f" (code {container.exit_code})" if container.exit_code is not None else ""
        return f"{container.state}{code}"
    if container.health == "unhealthy":
        return "unhealthy"
    return None


def reconcile(record: StackRecord, hosts: list[LiveHost]) -> LiveSummary:
    """The stack's placements checked against the containers its hosts report.

    A placement is fine when its container runs (and is not unhealthy); an unreachable host's
    placements are neither fine nor counted as failed: they make a running stack ``unknown``. A
    host not in ``hosts`` was not asked: its placements keep the stored status, listed as
    unchecked."""
    by_host = {h.host: h for h in hosts}
    running = checked = 0
    problems: list[str] = []
    unreachable: dict[str, str] = {}
    unchecked: set[str] = set()
    for instance, placement in sorted(record.placements.items()):
        host_id = str(placement.get("hostId") or "")
        docker_name = str(placement.get("dockerName") or instance)
        host = by_host.get(host_id)
        if host is None:
            unchecked.add(host_id)
            continue
        checked += 1
        if host.error is not None:
            unreachable[host_id] = host.error
            continue
        found = next((c for c in host.containers if c.docker_name == docker_name), None)
        if found is None:
            problems.append(f"{docker_name} on {host_id}: missing")
            continue
        problem = _problem(found)
        if problem is None:
            running += 1
        else:
            problems.append(f"{docker_name} on {host_id}: {problem}")
    status = record.status.value
    if record.status is StackStatus.running and (problems or unreachable):
        status = "degraded" if problems else "unknown"
    return LiveSummary(
        stack=record.name,
        stored=record.status,
        status=status,
        running=running,
        expected=len(record.placements),
        checked=checked,
        problems=problems,
        unreachable=[f"{h}: {why}" for h, why in sorted(unreachable.items())],
        unchecked=sorted(unchecked),
    )


def humanise_seconds(seconds: float | None) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``, ``12s``; empty for None."""
    if seconds is None:
        return ""
    total = int(max(0.0, seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
