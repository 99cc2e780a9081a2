"""The task monitor: returns expired leases to the queue and settles stacks nobody is running.

It runs when something changed (at most once a second) or when something falls due by time: a
task's lease, a runner's lease, an agent's contact to write down. An idle server sleeps.

With several replicas on one database, only the one holding the monitor's leadership runs it
(see :mod:`.replication`); the others write their agents' contact and wait for the lead.

A stack is left to whoever runs it: this server's background run, or another live process
holding its runner lease (another replica, ``graphium-run apply`` on the same store); a lease
whose holder is provably dead (same machine, its pid gone) is not waited out. Otherwise (a server restart, an
apply ``--no-wait``) the monitor looks at the tasks of the stack's current run only and applies
what :func:`graphium.run.lifecycle.decide` makes of them.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from graphium.control.server.replication import LEADER_CHECK, MonitorLeadership
from graphium.control.server.state import Server
from graphium.executors.owner import provably_dead
from graphium.records.stack import StackRecord, StackStatus
from graphium.records.task import TaskStatus
from graphium.run import lifecycle
from graphium.run.events import EventType, task_event

MONITOR_INTERVAL = 1.0  # at most one pass a second
MAX_SLEEP = 60.0  # and at least one a minute
log = logging.getLogger("graphium.control.server")


async def monitor(srv: Server, leadership: MonitorLeadership) -> None:
    """Requeue expired leases and settle stacks nobody is running, after every change and
    whenever a lease runs out, while this replica leads (see :mod:`.replication`); a replica
    that does not lead only writes its agents' contact, and checks for the lead every
    LEADER_CHECK seconds."""
    try:
        while True:
            version = srv.feed.version
            due = MONITOR_INTERVAL
            try:
                if await leadership.check():
                    due = await asyncio.to_thread(monitor_once, srv, set(srv.runs))
                else:
                    await asyncio.to_thread(srv.agents.flush)
                    due = min(LEADER_CHECK, srv.agents.next_flush())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task monitor pass failed")
            await asyncio.sleep(MONITOR_INTERVAL)
            await srv.feed.wait(version, max(0.0, due - MONITOR_INTERVAL))
    finally:
        leadership.release()


def monitor_once(srv: Server, active: set[str]) -> float:
    """One pass; ``active`` are the stacks this server runs in the background. Also writes the
    agents' contact seen since the last pass, when due. Returns the seconds until something
    falls due by time."""
    store = srv.store
    srv.agents.flush()
    with store.batch():
        requeued = store.requeue_expired()
        if requeued:
            srv.emit(*(task_event(EventType.task_updated, t) for t in requeued))
    now = datetime.now(UTC)
    for record in store.list_stacks():
        if record.id in active or record.status not in lifecycle.SETTLING:
            continue
        if lifecycle.lease_live(record, now) and not provably_dead(record.runner_owner):
            continue  # another process (an apply on this store, another replica) is running it
        with store.batch():
            current = store.get_stack(record.id)
            if current is not None and current.status in lifecycle.SETTLING:
                settle_once(srv, current)
    return next_due(srv, datetime.now(UTC))


def next_due(srv: Server, now: datetime) -> float:
    """Seconds until the first lease (a task's, a runner's) runs out or an agent's contact is due
    to be written, at most MAX_SLEEP."""
    store = srv.store
    held = (TaskStatus.assigned, TaskStatus.running)
    ends = [t.lease_expires_at for s in held for t in store.list_tasks(status=s)]
    ends += [r.runner_lease_until for r in store.list_stacks() if r.status in lifecycle.SETTLING]
    waits = [(datetime.fromisoformat(e) - now).total_seconds() for e in ends if e]
    return max(0.0, min([MAX_SLEEP, srv.agents.next_flush(), *waits]))


def settle_once(srv: Server, record: StackRecord) -> None:
    """Apply the lifecycle's decision for a stack whose run has no process (inside a batch)."""
    store = srv.store
    if record.status is StackStatus.deleting:
        cancel_open_builds(srv, record.id, "the stack is being deleted")
    stack_tasks = {t.id: t for t in store.list_tasks(stack_id=record.id)}
    run = lifecycle.current_run(record, stack_tasks.values())
    decision = lifecycle.decide(record, run, stack_tasks)
    for task_id, reason in decision.cancel.items():
        ended = store.transition(task_id, TaskStatus.cancelled, error=reason)
        srv.emit(task_event(EventType.task_updated, ended))
    if decision.delete:
        store.delete_stack(record.id)
    elif decision.record is not None:
        store.save_stack(decision.record)
    if decision.event is not None:
        srv.emit(decision.event)


def cancel_open_builds(srv: Server, stack_id: str, reason: str) -> None:
    """Pending tasks that would build the stack up must not run once it is being deleted."""
    with srv.store.batch():
        for task in lifecycle.open_builds(srv.store.list_tasks(stack_id=stack_id, status=TaskStatus.pending)):
            ended = srv.store.transition(task.id, TaskStatus.cancelled, error=f"not started: {reason}")
            srv.emit(task_event(EventType.task_updated, ended))


__all__ = ["MONITOR_INTERVAL", "cancel_open_builds", "monitor", "monitor_once", "next_due", "settle_once"]
