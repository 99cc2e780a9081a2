"""The current state a plan starts from: what the stored record and the observation say.

:func:`current_state` indexes the stack's observed containers by instance name and what the
stored spec (the one last applied) knows about the containers it declared: their declared names,
stop timeouts, dependencies, placements and spec (whose field hashes let a replace show old
values). It also takes the fingerprint the plan's task ids derive from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from graphium.errors import PlanError
from graphium.placement import instance_names
from graphium.plan.drift import Recorded
from graphium.plan.hashing import fingerprint, stack_containers
from graphium.plan.model import ObservedContainer, ObservedHost
from graphium.records.stack import StackRecord
from graphium.stack.models import StackSpec

__all__ = ["Current", "StoredIndex", "current_state", "refuse_blind", "stored_index"]


def refuse_blind(observed: Mapping[str, ObservedHost]) -> None:
    """Raise PlanError when a host could not be read: a plan made half-blind would remove or
    duplicate what it cannot see."""
    broken = [f"{h}: {o.error}" for h, o in sorted(observed.items()) if o.error]
    if broken:
        raise PlanError("cannot plan without seeing every host; unreadable: " + "; ".join(broken))


@dataclass
class StoredIndex:
    """What the stored spec (the one last applied) says about the containers it declared."""

    declared: dict[str, str] = field(default_factory=dict)  # instance -> declared name
    stop_timeouts: dict[str, float] = field(default_factory=dict)  # declared name -> seconds
    depends_on: dict[str, list[str]] = field(default_factory=dict)  # declared name -> dependencies
    recorded: dict[str, Recorded] = field(default_factory=dict)  # declared name -> spec and hashes
    hosts: dict[str, str] = field(default_factory=dict)  # instance -> host it was placed on

    def owner(self, instance: str) -> str:
        return self.declared.get(instance, instance)

    def stop_timeout(self, instance: str) -> float:
        return self.stop_timeouts.get(self.owner(instance), 10.0)


def stored_index(stored: StackRecord | None) -> StoredIndex:
    """The index of a stored record; empty where there is none or its spec no longer validates."""
    index = StoredIndex()
    if stored is None:
        return index
    index.hosts = {n: str(rec["hostId"]) for n, rec in stored.placements.items() if rec.get("hostId")}
    if not stored.spec:
        return index
    try:
        spec = StackSpec.model_validate(stored.spec)
    except ValueError:
        return index  # a record from an older release: delete without ordering rather than refuse
    net = spec.network_name()
    for c in spec.containers:
        index.stop_timeouts[c.name] = c.stop_timeout
        index.depends_on[c.name] = list(c.depends_on)
        index.recorded[c.name] = Recorded(c, net)
        for name in instance_names(c):
            index.declared[name] = c.name
    return index


@dataclass
class Current:
    """The stack's observed containers by instance name, the stored record's index, the fingerprint."""

    mine: list[ObservedContainer]
    by_name: dict[str, list[ObservedContainer]]
    before: StoredIndex
    fingerprint: str

    def current_placements(self) -> dict[str, str]:
        """Where each instance is now: observed containers first, else the stored placement."""
        stored_hosts = self.before.hosts
        current = dict(stored_hosts)
        for name, found in self.by_name.items():
            hosts = [c.host for c in found]
            current[name] = stored_hosts[name] if stored_hosts.get(name) in hosts else hosts[0]
        return current


def current_state(
    stack_name: str, observed: Mapping[str, ObservedHost], stored: StackRecord | None
) -> Current:
    """Phase 1 of a plan: the stack's containers as observed and as the stored record has them."""
    mine = stack_containers(stack_name, observed)
    by_name: dict[str, list[ObservedContainer]] = {}
    for c in mine:
        by_name.setdefault(c.name, []).append(c)
    return Current(mine, by_name, stored_index(stored), fingerprint(stack_name, observed, stored))
