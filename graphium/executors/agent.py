"""The executor for ``connection: agent`` hosts: the work is done by the host's agent, not by us.

Tasks are already in the store (the runner enqueued them); the host's agent claims, runs and
reports them. So :meth:`AgentExecutor.run` only waits for the task to end, and
:meth:`AgentExecutor.observe` answers from the observations the agents report, because an agent
host may sit behind NAT where nothing but its agent can see it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from graphium.errors import ExecutionError, NotFoundError
from graphium.plan.model import ObservedHost
from graphium.records.agent import no_live_agent
from graphium.records.event import Event
from graphium.records.task import Task, TaskStatus
from graphium.stack.models import Host
from graphium.store.base import TaskStore

DEFAULT_MAX_AGE = 300.0
POLL_INTERVAL = 0.05
#: A task still unclaimed this long after it was handed over makes us ask whether its host has a
#: live agent; the answer is repeated at most every WAIT_REPEAT seconds per host.
WAIT_NOTICE = 3.0
WAIT_REPEAT = 30.0

ChangeWaiter = Callable[[float], Awaitable[None]]
LastContact = Callable[[str], datetime | None]
WaitingReason = Callable[[str], str | None]
Notify = Callable[[Event], None]


def _parse(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class AgentExecutor:
    """Hands tasks to agents through the store and waits for their reports.

    ``max_age`` bounds how old the last sign of life of a host's agent (its last observation
    report, or ``last_contact`` when the server knows of a more recent claim or heartbeat) may be
    before the host counts as not connected. ``wait_for_change(timeout)``, when given, returns as
    soon as the store may have changed, so a result is seen at once instead of at the next poll.

    A task that waits for a host with no live agent is not waited on in silence: a
    ``task_waiting`` event ("no live agent for vm2, last seen 45 s ago") goes to ``notify`` (the
    store by default). ``waiting_reason(host)`` says why a host's tasks cannot start; by default
    it reads the agents' records in the store.
    """

    def __init__(
        self,
        store: TaskStore,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        poll_interval: float = POLL_INTERVAL,
        wait_for_change: ChangeWaiter | None = None,
        last_contact: LastContact | None = None,
        waiting_reason: WaitingReason | None = None,
        notify: Notify | None = None,
    ) -> None:
        self._store = store
        self._max_age = max_age
        self._poll_interval = poll_interval
        self._wait_for_change = wait_for_change
        self._last_contact = last_contact
        self._waiting_reason = waiting_reason or self._stored_waiting_reason
        self._notify = notify or (lambda event: store.append_events([event]))
        self._noticed: dict[str, float] = {}  # host -> when its missing agent was last reported

    def _stored_waiting_reason(self, host_id: str) -> str | None:
        return no_live_agent(host_id, self._store.list_agents(host_id=host_id), datetime.now(UTC))

    async def observe(self, hosts: list[Host], stack: str | None) -> dict[str, ObservedHost]:
        out: dict[str, ObservedHost] = {}
        now = datetime.now(UTC)
        for host in hosts:
            found = await asyncio.to_thread(self._store.get_observation, host.id)
            if found is None:
                out[host.id] = ObservedHost(
                    host=host.id, error=f"the agent of host {host.id} is not connected (it never reported)"
                )
                continue
            observed, reported_at = found
            seen = _parse(reported_at)
            contact = await asyncio.to_thread(self._last_contact, host.id) if self._last_contact else None
            if contact is not None and contact > seen:
                seen = contact
            age = (now - seen).total_seconds()
            if age > self._max_age:
                out[host.id] = ObservedHost(
                    host=host.id,
                    error=f"the agent of host {host.id} is not connected (last seen {age:.0f} s ago)",
                )
                continue
            if stack is not None:
                observed = observed.of_stack(stack)
            out[host.id] = observed
        return out

    async def run(self, task: Task, host: Host) -> dict[str, Any]:
        """Wait until the task ends; the runner's timeout bounds the wait."""
        handed = time.monotonic()
        checked = handed
        while True:
            try:
                current = await asyncio.to_thread(self._store.get_task, task.id)
            except NotFoundError:
                raise ExecutionError(
                    "the task was removed from the store", host=host.id, task=task.id
                ) from None
            if current.status is TaskStatus.completed:
                return current.result or {}
            if current.status in (TaskStatus.failed, TaskStatus.cancelled):
                reason = current.error or current.status.value
                raise ExecutionError(reason, host=host.id, task=task.id)
            moment = time.monotonic()
            if current.status is TaskStatus.pending and moment - checked >= WAIT_NOTICE:
                checked = moment
                await self._tell_if_stuck(current)
            if self._wait_for_change is not None:
                await self._wait_for_change(max(self._poll_interval, 0.25))
            else:
                await asyncio.sleep(self._poll_interval)

    async def _tell_if_stuck(self, task: Task) -> None:
        """Say so when ``task`` waits for a host whose agent is not live (once per WAIT_REPEAT)."""
        host = task.host_id
        last = self._noticed.get(host)
        if last is not None and time.monotonic() - last < WAIT_REPEAT:
            return
        reason = await asyncio.to_thread(self._waiting_reason, host)
        if reason is None:
            self._noticed.pop(host, None)
            return
        self._noticed[host] = time.monotonic()
        event = Event(
            type="task_waiting",
            stack_id=task.stack_id,
            task_id=task.id,
            host_id=host,
            run_id=task.run_id,
            data={"status": task.status.value, "message": reason},
        )
        await asyncio.to_thread(self._notify, event)

    async def close(self) -> None:
        pass


__all__ = ["AgentExecutor"]
