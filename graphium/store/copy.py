"""Copy what one task store holds into another, empty one (``graphium-run store copy FROM TO``).

Moving from the JSON file to PostgreSQL (or back) must keep what graphium cannot find again by
itself: the stacks' records (placements, specs, the current run), their versions (history and
rollback), the tasks with their results, the events, the agents and their hosts' observations.
It goes through the store interface only, so it works between any two backends, and it is one
durable write on the target (its ``batch``): a copy that fails leaves the target as it was.

The stores number some things themselves: event ``seq`` and version ``number`` start again
from 1 in the target (a version's ``rollbackOf`` is renumbered to match), and revisions count
from the copy. Copy while no server or apply writes the source.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphium.errors import StoreError
from graphium.records.stack import StackRecord, StackStatus
from graphium.store.base import TaskStore

__all__ = ["CopyCounts", "copy_store"]

_PAGE = 1000


@dataclass(frozen=True)
class CopyCounts:
    """How many of each record the copy wrote."""

    stacks: int
    versions: int
    tasks: int
    events: int
    agents: int
    observations: int


def _check_empty(target: TaskStore) -> None:
    if (
        target.list_stacks()
        or target.stats().get("total")
        or target.list_events(limit=1)
        or target.list_agents()
    ):
        raise StoreError("the target store is not empty: copy only into a new store (or database)")


def _save_stack(target: TaskStore, record: StackRecord) -> None:
    """A new record may only start deploying or deleting: others are written through deploying."""
    if record.status not in (StackStatus.deploying, StackStatus.deleting):
        target.save_stack(record.model_copy(update={"status": StackStatus.deploying}))
    target.save_stack(record)


def _copy_versions(source: TaskStore, target: TaskStore, stack_ids: list[str]) -> int:
    count = 0
    for stack_id in stack_ids:
        renumbered: dict[int, int] = {}
        for version in source.list_versions(stack_id):
            rollback_of = renumbered.get(version.rollback_of or 0, version.rollback_of)
            stored = target.save_version(version.model_copy(update={"rollback_of": rollback_of}))
            renumbered[version.number] = stored.number
            count += 1
    return count


def _copy_events(source: TaskStore, target: TaskStore) -> tuple[int, set[str]]:
    """Every event in seq order; also the stacks they name (a destroyed stack's versions stay)."""
    count, after = 0, 0
    stacks: set[str] = set()
    while True:
        page = source.list_events(after=after, limit=_PAGE)
        if not page:
            return count, stacks
        target.append_events([e.model_copy(update={"seq": 0}) for e in page])
        stacks |= {e.stack_id for e in page if e.stack_id}
        count += len(page)
        after = page[-1].seq


def copy_store(source: TaskStore, target: TaskStore) -> CopyCounts:
    """Copy every record of ``source`` into the empty ``target``, in one durable write."""
    _check_empty(target)
    stacks = source.list_stacks()
    tasks = source.list_tasks()
    agents = source.list_agents()
    with target.batch():
        for record in stacks:
            _save_stack(target, record)
        if tasks:
            target.create_tasks(tasks)
        events, named = _copy_events(source, target)
        stack_ids = sorted({s.id for s in stacks} | {t.stack_id for t in tasks if t.stack_id} | named)
        versions = _copy_versions(source, target, stack_ids)
        if agents:
            target.save_agents(agents)
        hosts = sorted(
            {a.host_id for a in agents} | {t.host_id for t in tasks} | {h for s in stacks for h in s.hosts}
        )
        observations = 0
        for host in hosts:
            found = source.get_observation(host)
            if found is not None:
                target.save_observation(found[0])
                observations += 1
    return CopyCounts(len(stacks), versions, len(tasks), events, len(agents), observations)
