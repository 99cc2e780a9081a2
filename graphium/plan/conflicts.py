"""Conflicts with what else runs on the hosts, found at plan time instead of halfway through an apply.

A plan creates containers named ``<stack>-<container>`` that publish host ports and mount named
volumes. Three things on a host make that fail however the tasks are ordered, so the plan (and an
apply, before it touches anything) refuses them, naming the host, the culprit and what to do:

- a container of that name that graphium does not own (no graphium labels, or another stack's);
- a host port already published by a container outside the stack;
- an ``external`` volume that does not exist.

Pure: it reads the observation's ``others`` (every container outside the stack) and ``volumes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from graphium.errors import ConflictError
from graphium.placement.base import host_ports
from graphium.plan.drift import parse_binding
from graphium.plan.model import DesiredContainer, ObservedHost, OtherContainer

__all__ = ["find_conflicts", "refuse_conflicts"]


def _owner(other: OtherContainer) -> str:
    if other.stack:
        return f"it belongs to graphium stack {other.stack}"
    return "graphium does not manage it (no graphium labels)"


def _whose(other: OtherContainer) -> str:
    return f"of graphium stack {other.stack}" if other.stack else "not managed by graphium"


def _name_conflict(d: DesiredContainer, other: OtherContainer) -> str:
    return (
        f"{d.host}: a container named {d.docker_name} ({other.id[:12]}, {other.state or 'unknown'}) "
        f"already exists and {_owner(other)}; remove or rename it (`docker rm -f {d.docker_name}` on "
        f"{d.host}), or rename container {d.declared_name} in the stack"
    )


def _port_conflicts(d: DesiredContainer, others: Iterable[OtherContainer]) -> list[str]:
    found = []
    wanted = host_ports(d.spec)
    for other in others:
        for binding in other.port_bindings:
            parsed = parse_binding(binding)
            if parsed is None:
                continue
            held = parsed[1]
            for port in wanted:
                if port.clashes(held):
                    found.append(
                        f"{d.host}: host port {port} of {d.name} is already published by "
                        f"container {other.docker_name} ({_whose(other)}); stop it, or give {d.name} "
                        "another hostPort (or another host)"
                    )
    return found


def _missing_external(d: DesiredContainer, observed: ObservedHost) -> list[str]:
    present = observed.volume_names()
    return [
        f"{d.host}: external volume {m.source}, mounted by {d.name} at {m.target}, does not exist; "
        f"create it there (`docker volume create {m.source}`), or drop 'external' to let graphium "
        f"create the stack's own volume {d.stack}-{m.source}"
        for m in d.spec.mounts
        if m.external and m.source and m.source not in present
    ]


def find_conflicts(desired: Iterable[DesiredContainer], observed: Mapping[str, ObservedHost]) -> list[str]:
    """Every conflict of the desired containers with their hosts, one sentence each, sorted."""
    found: set[str] = set()
    for d in desired:
        host = observed.get(d.host)
        if host is None:
            continue
        others = [o for o in host.others if o.stack != d.stack]
        found.update(_name_conflict(d, o) for o in others if o.docker_name == d.docker_name)
        found.update(_port_conflicts(d, others))
        found.update(_missing_external(d, host))
    return sorted(found)


def refuse_conflicts(
    stack: str, desired: Iterable[DesiredContainer], observed: Mapping[str, ObservedHost]
) -> None:
    """Raise :class:`ConflictError` listing every conflict; nothing has been touched yet."""
    found = find_conflicts(desired, observed)
    if found:
        listed = "\n".join(f"  {line}" for line in found)
        raise ConflictError(
            f"stack {stack} conflicts with what runs on its hosts ({len(found)} conflict(s)); "
            f"nothing was changed:\n{listed}"
        )
