"""The stack's named volumes in a plan: created before the containers that mount them, kept by a
destroy unless it is asked to remove them.

A named volume ``data`` of stack ``shop`` is the Docker volume ``shop-data``, labelled as the
stack's (``graphium.managed``, ``graphium.stack``, ``graphium.volume``), on every host where a
container mounting it is placed; an ``external`` volume is used by its own name and never created
nor removed (:mod:`graphium.plan.conflicts` refuses one that is missing). Volumes hold data: a
volume the stack no longer mounts is kept, and so is every volume on ``destroy`` unless
``volumes=True``; the plan's notes say which were kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from graphium.plan.dag import CREATING, TaskGraph
from graphium.plan.model import DesiredContainer, ObservedHost
from graphium.plan.payloads import VolumePayload
from graphium.records.task import TaskType

__all__ = ["VOLUME_TIMEOUT", "StackVolume", "plan_destroy_volumes", "plan_volumes", "wanted_volumes"]

VOLUME_TIMEOUT = 30.0


@dataclass(frozen=True, order=True)
class StackVolume:
    """One of the stack's own volumes on one host."""

    host: str
    name: str  # Docker name, ``<stack>-<volume>``
    volume: str  # the name in the stack file
    driver: str | None = None


def wanted_volumes(desired: Sequence[DesiredContainer]) -> dict[StackVolume, list[str]]:
    """The stack's own volumes each host needs -> the declared containers mounting it there."""
    out: dict[StackVolume, list[str]] = {}
    for d in desired:
        for mount in d.spec.mounts:
            name = mount.volume_name(d.stack)
            if name is None or mount.external or mount.source is None:
                continue
            users = out.setdefault(StackVolume(d.host, name, mount.source, mount.driver), [])
            if d.declared_name not in users:
                users.append(d.declared_name)
    return out


def _add(graph: TaskGraph, type_: TaskType, stack: str, volume: StackVolume, what: str) -> str:
    payload = VolumePayload(stack=stack, volume=volume.volume, name=volume.name, driver=volume.driver)
    node = graph.add(
        type_,
        volume.host,
        volume.name,
        name=volume.name,
        payload=payload.dump(),
        description=f"{what} volume {volume.name} {'on' if type_ is TaskType.ensure_volume else 'from'} "
        f"{volume.host}",
        timeout=VOLUME_TIMEOUT,
    )
    return node.id


def plan_volumes(
    graph: TaskGraph, stack: str, desired: Sequence[DesiredContainer], observed: Mapping[str, ObservedHost]
) -> list[str]:
    """Ensure each missing volume before the creations that mount it; the notes of the plan."""
    notes: list[str] = []
    wanted = wanted_volumes(desired)
    by_host = graph.by_host()
    for volume, users in sorted(wanted.items()):
        present = observed[volume.host].volume_names() if volume.host in observed else set()
        if volume.name in present:
            continue
        ensure = _add(graph, TaskType.ensure_volume, stack, volume, "create")
        for node in by_host.get(volume.host, ()):
            if node.type in CREATING and node.declared in users:
                node.deps.add(ensure)
        if volume.volume in present:
            notes.append(
                f"volume {volume.volume} on {volume.host} is not the stack's: its containers will mount "
                f"their own {volume.name}, created empty; to keep using {volume.volume}, declare the "
                "mount 'external: true'"
            )
    kept = {(v.host, v.name) for v in wanted}
    for host, o in sorted(observed.items()):
        for v in o.volumes:
            if v.stack == stack and (host, v.name) not in kept:
                notes.append(
                    f"kept volume {v.name} on {host}: no container of the stack mounts it any more "
                    f"(`docker volume rm {v.name}` there removes it)"
                )
    return notes


def plan_destroy_volumes(
    graph: TaskGraph, stack: str, observed: Mapping[str, ObservedHost], *, remove: bool
) -> list[str]:
    """Remove the stack's volumes after its containers (``remove``), or say which are kept."""
    found = sorted(
        StackVolume(host, v.name, v.name.removeprefix(f"{stack}-"))
        for host, o in observed.items()
        for v in o.volumes
        if v.stack == stack
    )
    if not remove:
        return [
            f"kept volume {v.name} on {v.host} (its data stays; `destroy --volumes` removes it)"
            for v in found
        ]
    by_host = graph.by_host()
    for volume in found:
        gone = _add(graph, TaskType.remove_volume, stack, volume, "remove")
        node = graph.nodes[gone]
        node.deps.update(n.id for n in by_host.get(volume.host, ()) if n.type is TaskType.delete)
    return []
